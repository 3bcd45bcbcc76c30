import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Analysis, Analyzer, EscalationLevel, IntensityLevel } from "../src/analysis/analyzer.ts";
import { ESCALATION_LEVELS, INTENSITY_LEVELS } from "../src/analysis/analyzer.ts";
import { createLexiconAnalyzer } from "../src/analysis/lexicon.ts";
import type { MessageActor, TranscriptUnit } from "../src/ingestion/types.ts";

const analyzer: Analyzer = createLexiconAnalyzer();

const review = (text: string): Promise<Analysis> =>
  analyzer.analyze({ type: "REVIEW", content: { kind: "text", text } });

const chat = (messages: [MessageActor, string][]): Promise<Analysis> =>
  analyzer.analyze({
    type: "CONVERSATION",
    content: { kind: "messages", messages: messages.map(([actor, text]) => ({ actor, text })) },
  });

const unit = (actor: string, text: string): TranscriptUnit => ({
  actor,
  actorId: null,
  text,
  startMs: null,
  endMs: null,
});

const rank = (level: EscalationLevel): number => ESCALATION_LEVELS.indexOf(level);
const heat = (level: IntensityLevel): number => INTENSITY_LEVELS.indexOf(level);

describe("lexicon analyzer: escalation", () => {
  it("calls a legal threat extreme and says why", async () => {
    const a = await review(
      "Your company kept charging me after I cancelled. I have forwarded everything to my attorney.",
    );
    assert.equal(a.escalation_level, "extreme");
    assert.ok(
      a.cues.some((c) => c.startsWith("legal threat")),
      a.cues.join(", "),
    );
    assert.equal(a.analyzer, "lexicon-v1");
  });

  it("calls a polite regulator complaint extreme", async () => {
    const a = await review(
      "Thank you for your reply. As my data has still not been deleted, I have respectfully lodged a complaint with the data protection authority today.",
    );
    assert.equal(a.escalation_level, "extreme");
  });

  it("calls safety and security incidents extreme", async () => {
    assert.equal(
      (await review("The charger caught fire overnight and burned my hand.")).escalation_level,
      "extreme",
    );
    assert.equal(
      (await review("My account was hacked and there are unauthorized transfers I never made."))
        .escalation_level,
      "extreme",
    );
  });

  it("calls churn, chargeback and public exposure threats high or above", async () => {
    for (const text of [
      "Third outage this month. If it happens again we're switching to a competitor.",
      "Refund the $80 by Friday or I'm filing a chargeback with my bank.",
      "Unless someone fixes this I'm posting the whole story on Twitter and every review site.",
      "I've emailed support five times with no reply. I want to speak to a manager.",
    ]) {
      const a = await review(text);
      assert.ok(rank(a.escalation_level) >= rank("high"), `${text} → ${a.escalation_level}`);
    }
  });

  it("keeps praise in strong words at none or low", async () => {
    const a = await review(
      "Holy hell, this app is stupidly good. The new editor is insanely fast. Absolute beast, 10/10.",
    );
    assert.ok(rank(a.escalation_level) <= rank("low"), a.escalation_level);
    assert.ok(a.sentiment > 0, String(a.sentiment));
  });

  it("does not treat negated churn as a threat", async () => {
    const a = await review("I would never cancel, this is the best budgeting tool I've used.");
    assert.ok(rank(a.escalation_level) < rank("high"), a.escalation_level);
  });

  it("ignores harmless uses of trigger words", async () => {
    for (const text of [
      "I'm a lawyer and I love how clean the contract templates are.",
      "How do I cancel just one item from my order? The rest is fine.",
      "My neighbour said 'I'm going to sue them' about his delivery, but mine arrived early and intact.",
    ]) {
      const a = await review(text);
      assert.ok(
        rank(a.escalation_level) <= rank("low"),
        `${text} → ${a.escalation_level} [${a.cues.join(", ")}]`,
      );
    }
  });

  it("calls a sarcastic review with a churn threat high", async () => {
    const a = await review(
      "Oh great, the app crashed again during checkout. Thanks for nothing. Moving all our accounts to another provider next week.",
    );
    assert.ok(rank(a.escalation_level) >= rank("high"), a.escalation_level);
  });
});

describe("lexicon analyzer: conversations", () => {
  it("flags a calm conversation that turns into a chargeback threat, with the turning message as driver", async () => {
    const a = await chat([
      ["user", "Hi, I have a question about my invoice from March."],
      ["agent", "Sure, what would you like to know?"],
      ["user", "It shows two licences but we only have one user."],
      ["agent", "I'm afraid licences are not refundable once the billing period has started."],
      ["user", "Then refund the second licence by Friday or I'm disputing the charge with my card issuer."],
    ]);
    assert.ok(rank(a.escalation_level) >= rank("high"), a.escalation_level);
    assert.equal(a.sentiment_shift, "sentiment degraded");
    assert.equal(a.driver?.message_index, 4);
    assert.match(a.driver?.text ?? "", /disputing the charge/);
  });

  it("judges a resolved conversation by where the customer ends up", async () => {
    const a = await chat([
      ["user", "WHY WAS I CHARGED TWICE THIS MONTH?? This is ridiculous."],
      ["agent", "Sorry about that! I've refunded the duplicate charge just now."],
      ["user", "Oh, that was fast. It worked, thank you, sorry for yelling."],
    ]);
    assert.ok(rank(a.escalation_level) <= rank("low"), a.escalation_level);
    assert.equal(a.sentiment_shift, "sentiment improved");
  });

  it("only counts the customer's messages", async () => {
    const a = await chat([
      ["user", "Can I change the delivery address on my order?"],
      ["agent", "Yes. Note that disputes or chargebacks go to our legal team and a lawyer reviews them."],
      ["user", "Great, thanks, changed it."],
    ]);
    assert.ok(rank(a.escalation_level) <= rank("low"), `${a.escalation_level} [${a.cues.join(", ")}]`);
  });

  it("reports no change for a single customer message", async () => {
    const a = await chat([
      ["bot", "Hi! How can I help?"],
      ["user", "Do you deliver on Sundays?"],
    ]);
    assert.equal(a.sentiment_shift, "no change");
    assert.equal(a.escalation_level, "none");
  });
});

describe("lexicon analyzer: record types", () => {
  it("gives audio without a transcript level none with a reason", async () => {
    const a = await analyzer.analyze({
      type: "AUDIO_RECORDING",
      content: { kind: "audio", audioUrl: "https://example.com/call.wav", transcript: null },
    });
    assert.equal(a.escalation_level, "none");
    assert.equal(a.emotional_intensity_level, "low");
    assert.equal(a.sentiment_shift, null);
    assert.equal(a.driver, null);
    assert.match(a.reason ?? "", /without transcript/);
  });

  it("analyses a transcript's customer units, treating unknown actors as the customer", async () => {
    const a = await analyzer.analyze({
      type: "AUDIO_RECORDING",
      content: {
        kind: "audio",
        audioUrl: "https://example.com/call.wav",
        transcript: [
          unit("agent", "Thanks for calling, how can I help?"),
          unit("speaker_1", "Someone logged into my account and my savings are gone. This is fraud."),
          unit("agent", "I'm so sorry, let me lock the account."),
        ],
      },
    });
    assert.equal(a.escalation_level, "extreme");
    assert.equal(a.driver?.message_index, 1);
    assert.equal(a.reason, null);
  });

  it("ignores the agent's words in a transcript with named customers", async () => {
    const a = await analyzer.analyze({
      type: "AUDIO_RECORDING",
      content: {
        kind: "audio",
        audioUrl: "https://example.com/call.wav",
        transcript: [
          unit("caller", "Hi, I'd like to update my billing address."),
          unit("agent", "Sure. By the way, our fraud team and lawyers are very busy this week."),
          unit("caller", "Okay, thanks."),
        ],
      },
    });
    assert.ok(rank(a.escalation_level) <= rank("low"), `${a.escalation_level} [${a.cues.join(", ")}]`);
  });

  it("sets shift null for reviews and surveys", async () => {
    assert.equal((await review("Fine product, arrived on time.")).sentiment_shift, null);
    const survey = await analyzer.analyze({
      type: "SURVEY",
      content: {
        kind: "survey",
        responses: [
          { question: "How likely are you to recommend us?", answer: ["1"], selectedOptions: [] },
          {
            question: "What would make you stay?",
            answer: ["Nothing. We're moving to a competitor at renewal."],
            selectedOptions: [],
          },
        ],
      },
    });
    assert.equal(survey.sentiment_shift, null);
    assert.ok(rank(survey.escalation_level) >= rank("high"), survey.escalation_level);
    assert.equal(survey.driver?.message_index, 1);
  });

  it("keeps sentiment within -1..1", async () => {
    for (const text of [
      "Love love love it!!! Best ever!!!",
      "Worst, horrible, awful, disgusting, terrible service.",
    ]) {
      const a = await review(text);
      assert.ok(a.sentiment >= -1 && a.sentiment <= 1, String(a.sentiment));
    }
  });
});

describe("lexicon analyzer: intensity", () => {
  it("rises with capitals, exclamation marks and profanity", async () => {
    const calm = await review("The latest update broke the export button.");
    const loud = await review("THE LATEST UPDATE BROKE THE EXPORT BUTTON!!! FIX IT NOW!!!");
    const profane = await review("The latest update broke the fucking export button again, what the hell!!");
    assert.equal(calm.emotional_intensity_level, "low");
    assert.ok(heat(loud.emotional_intensity_level) > heat(calm.emotional_intensity_level));
    assert.ok(heat(profane.emotional_intensity_level) > heat(calm.emotional_intensity_level));
    assert.ok(loud.cues.includes("all caps"), loud.cues.join(", "));
  });

  it("keeps a courteous legal notice calm while escalating it", async () => {
    const a = await review(
      "Good afternoon. I would be grateful for a written reply. Please note I have referred the matter to the Financial Ombudsman. Thank you.",
    );
    assert.equal(a.escalation_level, "extreme");
    assert.ok(heat(a.emotional_intensity_level) <= heat("medium"), a.emotional_intensity_level);
  });
});
