import { indexPath, invalid, kindOf, missing, quote, type RecordContext } from "./issues.ts";
import { isBlank, isPlainObject, prop, requiredArray, requiredObject, requiredString } from "./read.ts";
import type { MessageActor, RecordContent } from "./types.ts";

const ACTORS: readonly string[] = ["user", "agent", "bot"];

type Message = { actor: MessageActor; text: string };

/**
 * `conversation.msgs` of a CONVERSATION or FORUM_CONVERSATION_THREAD, in order (a forum thread's first
 * message is the post). Messages with blank text are dropped; at least one must remain. Returns undefined
 * after reporting.
 */
export function readMessages(
  ctx: RecordContext,
  record: Record<string, unknown>,
  base: string,
): RecordContent | undefined {
  const conversationPath = `${base}.conversation`;
  const conversation = requiredObject(ctx, prop(record, "conversation"), conversationPath, "conversation");
  if (conversation === undefined) return undefined;
  const msgsPath = `${conversationPath}.msgs`;
  const raw = requiredArray(ctx, prop(conversation, "msgs"), msgsPath, "conversation.msgs");
  if (raw === undefined) return undefined;
  if (raw.length === 0) {
    missing(ctx, msgsPath, "conversation.msgs must contain at least one message");
    return undefined;
  }
  const before = ctx.issues.length;
  const messages: Message[] = [];
  for (let i = 0; i < raw.length; i++) {
    const message = readMessage(ctx, raw[i], indexPath(msgsPath, i));
    if (message) messages.push(message);
  }
  if (ctx.issues.length > before) return undefined;
  if (messages.length === 0) {
    missing(
      ctx,
      msgsPath,
      "at least one message must have non-empty text (empty and whitespace-only messages are dropped)",
    );
    return undefined;
  }
  return { kind: "messages", messages };
}

/** One message: kept, null when its text is blank, undefined after reporting. */
function readMessage(ctx: RecordContext, raw: unknown, path: string): Message | null | undefined {
  if (!isPlainObject(raw)) {
    invalid(ctx, path, `message must be an object with actor and text (got ${kindOf(raw)})`);
    return undefined;
  }
  const actor = readActor(ctx, prop(raw, "actor"), `${path}.actor`);
  const text = requiredString(ctx, prop(raw, "text"), `${path}.text`, "text");
  if (actor === undefined || text === undefined) return undefined;
  return isBlank(text) ? null : { actor, text };
}

/** Exactly "user", "agent" or "bot"; seed 000 rejects any other value, other casings included. */
function readActor(ctx: RecordContext, value: unknown, path: string): MessageActor | undefined {
  const actor = requiredString(ctx, value, path, "actor");
  if (actor === undefined) return undefined;
  if (!ACTORS.includes(actor)) {
    invalid(ctx, path, `actor must be one of user, agent, bot (got ${quote(actor)})`);
    return undefined;
  }
  return actor as MessageActor;
}
