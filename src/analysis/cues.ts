import { isQuestion, sentences, stripQuotes } from "./text.ts";

/** 0 none, 1 low, 2 medium, 3 high, 4 extreme: the escalation level a cue sets as a floor. */
export type LevelNumber = 0 | 1 | 2 | 3 | 4;

export type CueKind =
  | "legal"
  | "regulator"
  | "police"
  | "safety"
  | "security"
  | "rights"
  | "churn"
  | "refund"
  | "public"
  | "repeat-contact"
  | "manager"
  | "human-now"
  | "impact"
  | "repeat-problem"
  | "frustration"
  | "harm"
  | "routine"
  | "minor"
  | "resolution"
  | "polite-thanks";

/** A phrase that signals escalation (or its absence), with the level it implies. */
export interface Cue {
  kind: CueKind;
  level: LevelNumber;
  /** Human-readable, e.g. "legal threat: 'my attorney'". */
  label: string;
}

interface Rule {
  kind: CueKind;
  level: LevelNumber;
  label: string;
  re: RegExp;
  /** "I would never cancel", "nobody was hurt": a negation just before the phrase cancels it. */
  negatable?: boolean;
  /** "how do I cancel one item?": a question about the action is not a threat to take it. */
  notInQuestions?: boolean;
  /** "people were calling it a scam": somebody else's words, reported. */
  notHearsay?: boolean;
  /** Harmless uses in the same sentence, e.g. "office manager". */
  unless?: RegExp;
  /** Whether to show the matched words in the label. */
  quote?: boolean;
}

const R = (rule: Rule): Rule => rule;

const REGULATORS =
  "ftc|cfpb|fcc|bbb|better business bureau|ombudsman|attorney general|data protection (authority|commissioner|office)|supervisory authority|\\bico\\b|cnil|cpsc|fda|ofcom|trading standards|department of (insurance|transportation|consumer affairs|health|labor|justice)|(utility|utilities|public service|public utilities|trade) commission|moving authority|consumer protection|consumer (affairs|council)|regulator|licensing board|finra|consumer (board|agency|authority|bureau|watchdog|ombudsman|tribunal|commission)|watchdog|information commissioner|(privacy|data protection|financial|banking|telecoms?|energy|aviation) (regulator|ombudsman|commissioner|authority)|financial conduct authority|\\bfca\\b|\\bofgem\\b|\\bcma\\b|\\bacma\\b|\\baccc\\b|\\bsec\\b(?= (complaint|filing|about|regarding|tip))|\\bdot\\b|aviation consumer";

const RULES: Rule[] = [
  // extreme: legal action, regulators, police
  R({
    kind: "legal",
    level: 4,
    label: "legal threat",
    re: /\b(my|our) (lawyers?|attorneys?|solicitors?|legal (team|department|counsel)|counsel)\b|\b(retain(ed|ing)?|hir(e|ed|ing)|call(ed|ing)?|contact(ed|ing)?|consult(ed|ing)?|get(ting)?|speak(ing)? (to|with)|talk(ing)? to) (a |an |my )?(lawyer|attorney|solicitor|counsel)\b|\blegal (action|proceedings|steps|claim)\b|\b(law ?suit|class action|small claims|cease and desist|letter before action)\b|\b(take|taking|see) (you|this|it|them|the matter) (to|in) court\b/i,
    negatable: true,
    notHearsay: true,
    quote: true,
  }),
  R({
    kind: "legal",
    level: 4,
    label: "legal threat",
    re: /\b(i|we|i'll|we'll|will|to|going to|gonna|and|then|should|could|might) su(e|ing)\b|\bsu(e|ing) (you|your|them|the company|this company)\b/i,
    negatable: true,
    notHearsay: true,
    quote: true,
  }),
  R({
    kind: "regulator",
    level: 4,
    label: "regulator complaint",
    re: new RegExp(
      `\\b(complain\\w*|report\\w*|rais(e|ed|ing)|(tak(e|ing)|took) (this|it|the matter|my case)|alert\\w*|fil(e|ed|ing)|lodg(e|ed|ing)|submit\\w*|refer\\w*|contact\\w*|notif\\w*|escalat\\w*|writ(e|ing) to|wrote to|go(ing)? to) (.{0,60}?)\\b(${REGULATORS})`,
      "i",
    ),
    negatable: true,
    notHearsay: true,
    unless: /\b(dot|ftc|fcc) (\w+ )?(rules?|regulations?|guidelines)\b/i,
    quote: true,
  }),
  R({
    kind: "police",
    level: 4,
    label: "police involvement",
    re: /\bpolice\b/i,
    negatable: true,
    notHearsay: true,
  }),
  // extreme: safety
  R({
    kind: "safety",
    level: 4,
    label: "safety incident",
    re: /\b(caught fire|on fire|a fire\b|fire (department|hazard|risk)|flames?\b|burst into|explod(e|ed|ing)|explosion|smoke (came|was|poured|pouring)|started smoking|(smell(ed|s)? of|leaking) gas|gas leak|carbon monoxide|electric(al)? shock|electrocut\w*|melt(ed|ing)|scorch(ed|ing)|swell(ed|ing)|swollen|too hot to touch|overheat(ed|ing)|blisters?|(a |the |bad |severe |second[- ]degree |third[- ]degree )burns?\b|burn(ed|t)? (my|his|her|their|our)|injur(y|ies|ed)|(got|was|were|is|been) hurt|almost (got )?(crushed|killed)|(got|was|were|been) crushed|bleeding|nosebleeds?|allergic reaction|anaphyla\w*|had a reaction|epi-?pen|severe allergy|food poisoning|poison(ed|ing)|vomit\w*|seizure|fainted|unconscious|choking|choke hazard|urgent care|emergency room|ambulance|911|(in|to|from) (the )?hospital|hospitali[sz]ed|blood sugar|overdose|wrong (dose|dosage)|dangerous\b|dangerously (high|low|hot)|unsafe|recall (these|this|it|them)|please recall|stop selling)/i,
    negatable: true,
    notHearsay: true,
    unless: /\b(fire|smoke) alarm test\b|\bfire (sale|feature|update)\b/i,
    quote: true,
  }),
  R({
    kind: "safety",
    level: 4,
    label: "safety incident",
    // Case-sensitive: "er" is also a filler word.
    re: /\b(in|to|at|from) the ER\b/,
    negatable: true,
    notHearsay: true,
    quote: true,
  }),
  // extreme: security and fraud
  R({
    kind: "security",
    level: 4,
    label: "security incident",
    re: /\b(hack(ed|er|ers)?|breach(ed)?(?! (monitoring|alerts?|protection|detection))|identity theft|stolen|stole|fraud\w*(?! (prevention|detection|monitoring|protection|team))|scammed|phished|compromised|someone (just )?(logged|got|broke) in(to)?|someone else'?s (account|bank|data|details|information|orders?|records|name)|(card|account) (was|has been|is being) (just )?(used|accessed|emptied|drained)|spending my money|draining (my|our)|exposed (our|my|the) \w+|data (incident|leak)|(without|after i withdrew) (my )?consent|freeze (the|my) (account|card)|unauthori[sz]ed (access|login|logins|transfer|transfers|transaction|transactions|payment|payments))\b/i,
    negatable: true,
    notHearsay: true,
    quote: true,
  }),
  // high: rights, churn, money, public exposure, contact failures, managers, business impact
  R({
    kind: "rights",
    level: 3,
    label: "cites consumer rights",
    re: /\bunder (the )?([A-Z][\w-]*\s){0,5}(act|directive|regulation|rules?|law)\b|\b(consumer|statutory|legal|my) rights\b|\bentitled to\b|\bin my (state|country)\b.{0,40}\b(law|has to|must|required)\b|\bstatutory\b|\bgdpr\b|\b(fair credit billing|consumer rights) act\b|\bcit(e|ed|ing) the\b.{0,30}\b(rule|law|act|regulation)\b/i,
    negatable: true,
    notHearsay: true,
  }),
  R({
    kind: "churn",
    level: 3,
    label: "churn threat",
    re: /\b(cancel(l?ing)?|terminat(e|ing)|clos(e|ing)|end(ing)?) (my|our|the) ((family'?s |whole |entire |\d+-\w+ )?\w+ )?(subscription|membership|account|accounts|plan|contract|service|policy)\b|\bbook my cancellation\b|\btermination notice\b|\b(i'?m|i am|we'?re|we are) (cancel(l?ing)|migrating|out|gone)\b|\b(i'?m|i am|we'?re|we are) (leaving|moving|switching)(?=[.!,]|$| (you|elsewhere|for good|providers|carriers|banks|to (another|a different|a competitor|other)))|\b(i'?m|i am|we'?re|we are) (so )?done\b(?! (with (the|setup|my)|now)\b)|\b(i|we)('ll| will| shall|'m going to| am going to|'re going to| are going to| are gonna|'m gonna) (cancel|leave|switch|migrate|move|stop using|go elsewhere|take (my|our) business)\b|\bswitch(ing|ed)? (over )?(carriers|providers|banks|provider|bank|to (another|a different|a competitor|other|one of your competitors))\b|\b(move|moving|migrat\w+) (\w+'?s? ){0,5}(to (another|a different|other|a new)|somewhere else|elsewhere)\b|\bmoving (my|our) (money|business|account)\b|\b(evaluat\w+|look\w* at|review\w*|consider\w*) (of )?(\w+ ){0,2}(alternatives|other (\w+ )?(vendors|providers|options|agencies|banks|carriers|suppliers|companies|platforms|services|insurers)|our options|competitors?|rivals?)\b|\bcompetitors?\b|\brival (platform|provider|company|bank|carrier|service|product|app|firm|supplier)s?\b|\bnever (book|fly|order|buy|shop|use|come back|be back|return)\w* .{0,25}\bagain\b|\bwon'?t (fly|book|order|buy|shop|use|be back|come back|renew)\b|\b(done|finished) (flying|using|ordering|with you)\b|\bi'?m gone\b|\balready (booked|switched|signed up|moved|ported)\b/i,
    negatable: true,
    notInQuestions: true,
    notHearsay: true,
    unless:
      /\b(just|only) (one|a single|the one)\b|\bsingle\b|\badd-?on\b|\bone of my\b|\bnot because of (the|your) (service|product)\b|\bwill be back\b/i,
    quote: true,
  }),
  R({
    kind: "churn",
    level: 3,
    label: "churn threat",
    // Case-sensitive: a capitalised name after "switching to" is a competitor, "the annual plan" is not.
    re: /\b[Ss]witch(ing|ed)? (over )?to (?!The |A |An |I )[A-Z][\w-]+/,
    negatable: true,
    notInQuestions: true,
    notHearsay: true,
    quote: true,
  }),
  R({
    kind: "refund",
    level: 3,
    label: "chargeback or refund demand",
    re: /\bcharge ?backs?\b|\bdisput(e|ed|es|ing) (it|this|the (charge|transaction|payment|whole \w+)|with)\b|\bfile a dispute\b|\b(card issuer|card company|card provider|my bank will)\b|\b(i|we) (want|need|demand|expect|am requesting|'m requesting|are requesting|request) (a |my |our |the )?(full |cash )?(refund|money back|reimbursement|deposit refunded)\b|\bfull refund\b|\brefund (it|me|the \$[\d,.]+)\b.{0,20}\b(today|now|immediately|or)\b|\b(need|want) (this|it) reversed\b|\breversed today\b|\bbilling error notice\b/i,
    negatable: true,
    notInQuestions: true,
    notHearsay: true,
    quote: true,
  }),
  R({
    kind: "public",
    level: 3,
    label: "public exposure threat",
    re: /\b(post\w*|shar(e|ing)|writ(e|ing)( (this|it|everything|exactly what happened))?( up)?|tell\w*|warn\w*|put\w*|leav(e|ing)|tag\w*) .{0,60}\b(twitter|instagram|facebook|tiktok|reddit|subreddit|yelp|trustpilot|google|review sites?|reviews? sites?|social media|(every|consumer) forums?|everywhere|the news|local news|press|linkedin|youtube)\b|\b(contact\w*|call\w*|go\w*) (to )?the (local )?(news|press|media)\b|\bjournalists?\b|\bgo(ing)? public\b|\b(very )?detailed review\b|\b(bad|negative|1-star|one-star|scathing) reviews?\b|\bso (others|other people) know\b|\bwarning to (other|all|anyone)\b/i,
    negatable: true,
    notHearsay: true,
    quote: true,
  }),
  R({
    kind: "repeat-contact",
    level: 3,
    label: "repeated failed contact",
    re: /\b(third|fourth|fifth|sixth|seventh|\d+(st|nd|rd|th)) (time|review|request|written request|email|call|attempt|chat|ticket)\b.{0,50}\b(ask|going through|contact|call|writ|chat|request|email|reach|me again|follow)\w*|\b(me again|again),? for the (third|fourth|fifth|sixth|\d+(st|nd|rd|th)) time\b|\b(asked|called|emailed|written|wrote|contacted|chatted|explained it to|told) .{0,25}\b(two|three|four|five|six|seven|several|multiple|many|\d+) (times|agents|people|reps)\b|\b(two|three|four|five|six|seven|several|multiple|\d+) (separate )?(support )?(tickets|chats|calls|emails|reminders|requests|written requests)\b.{0,40}\b(zero|no|unanswered|still|nothing|same)\b|\bno (reply|replies|answer|answers|response|responses) (to|from|after) (my )?(two|three|four|five|six|several|multiple|\d+)\b|\b(no one|nobody|no-one) (replies|answers|responds|gets back|has (replied|answered|responded)|reads|picks up)\b|\b(go|goes|went|are|were|remain) unanswered\b|\b(haven'?t|hasn'?t|have not|has not|never) (heard back|replied|answered|responded|gotten back)\b|\bno (answer|reply|response) after\b|\bstill no (reply|response|answer|word)\b|\bthe last (two|three|four|five) (people|agents)\b|\banswer (me|your phones?)\b/i,
    negatable: false,
    notHearsay: true,
    quote: true,
  }),
  R({
    kind: "manager",
    level: 3,
    label: "asks for a manager",
    re: /\b(speak|talk|escalat\w*|transfer\w*|want|need|like|get|ask\w* for|request\w*|call\w*|review|conversation|call) .{0,40}\b(a |your |the |to a |with a |someone )(manager|supervisor|someone senior|senior|owner|boss|finance director|security lead|team lead)\b|\b(manager|supervisor),? please\b|\b(a|your) (manager|supervisor) (to|could|should|call)\b|\bsomeone senior\b/i,
    negatable: true,
    notHearsay: true,
    unless: /\b(my|our|office|account|store) manager\b|\bi'?m (a|the) manager\b/i,
    quote: true,
  }),
  R({
    kind: "human-now",
    level: 3,
    label: "demands a human now",
    re: /\b(need|want)s? (a human|an? (agent|engineer|person|human|real person)|someone|somebody|your \w+ team)\b.{0,40}\b(now|today|right now|immediately|asap|within the hour|on this|to call me)\b|\bwho can i talk to right now\b|\bneeds to call me\b|\bi need a human\b/i,
    negatable: true,
    notHearsay: true,
    quote: true,
  }),
  R({
    kind: "impact",
    level: 3,
    label: "serious business impact",
    unless:
      /\blost (a |an |the |my )?(whole |entire )?(weekend|evening|night|afternoon|day|morning|hours?|sleep) to\b/i,
    re: /\b(costing|cost) (us|me) (real money|an entire day|a day|\$|thousands|our)|\b(can'?t|cannot|unable to) (take|process|accept) (card )?payments\b|\bturning (customers|people) away\b|\b(has been|is|been|went) down (since|for)\b|\b(lost|deleted|wiped|erased)\b.{0,30}\b(years?|all|every|everything|entire|whole)\b|\b(all|every|entire|whole|years of)\b.{0,30}\b(gone(?! (out|through|well|smoothly))|deleted|wiped|erased|empty|lost)\b|\b(paid|got paid) late\b|\brent (bounce|bounced|is late)\b|\bmissed (\w+ ){0,2}(client|customer|patient)s? (meetings?|appointments?|calls?|deadlines?)\b|\b(\d+|all|our|the) (patients|employees|clients|customers) (booked|got|are|were|can'?t)\b/i,
    negatable: true,
    notHearsay: true,
    quote: true,
  }),

  // Generalised families (word variants and common paraphrases of the categories above).
  R({
    kind: "legal",
    level: 4,
    label: "legal threat",
    re: /\b(instruct(ed|ing)?|engag(e|ed|ing)|involv(e|ed|ing)|brought in|bring(ing)? in|spok(e|en) (to|with)|seek(ing)?|sought|took|tak(e|ing)|get(ting)?|got) (a |an |my |our |some |proper )?(legal (advice|counsel|representation)|lawyers?|attorneys?|solicitors?|law firm)\b|\b(see|take|taking|took|drag(ging)?) (you|them|the company|this|it) to (court|tribunal|small claims)\b|\b(bring(ing)?|fil(e|ed|ing)|issu(e|ed|ing)|start(ed|ing)?|lodg(e|ed|ing)) (a |the )?(legal claim|court claim|claim in (the )?(\w+ )?court|proceedings)\b|\b(my|our) legal options\b|\b(threaten\w*|begin|start|pursu\w*|consider\w*|initiat\w*) litigation\b/i,
    negatable: true,
    notHearsay: true,
    quote: true,
  }),
  R({
    kind: "safety",
    level: 4,
    label: "safety incident",
    re: /\b(hives|(trouble|difficulty|struggl\w+) breathing|(couldn'?t|could not|can'?t|cannot) breathe|throat (swell\w*|closing)|(broke|broken|fractured|sprained|dislocated) (my|his|her|their|a) (wrist|arm|leg|ankle|hip|rib|ribs|finger|toe|nose|collarbone|foot|hand|tooth)|concussion|(needed|got|needing|\d+) stitches|(chest pains?|palpitations)|admitted to (a&e|hospital|the er|the emergency|intensive care)|\ba&e\b|the er\b|(exposed|live|bare|sparking) wires?|spark(ed|ing)\b|sparks (flew|came|shot|coming)|(brakes?|airbags?|seatbelts?|harness|handrail|railing) (failed|gave way|snapped|broke)|(rolled|fell|tipped|collapsed) (into|onto|over|on) (the road|traffic|me|him|her|the child|the baby|my (son|daughter|child|kid|baby|toddler|dog|cat|leg|foot|head|hand))|\b(i|he|she|we|they|my (son|daughter|child|kid|baby|toddler|husband|wife|mother|father|mum|mom|dad)) (fell|had fallen) (through|off|down)|(gave way|collapsed) (under|beneath)|sharp (metal|glass|edge) (in|inside)|glass (in|inside) (the|my) (food|meal|drink|salad)|mou?ld (in|on|inside) (the|my) (food|meal|formula|milk)|got sick after|made (me|us|my \w+) (sick|ill)|fumes)\b/i,
    negatable: true,
    notHearsay: true,
    quote: true,
  }),
  R({
    kind: "security",
    level: 4,
    label: "security incident",
    re: /\b(someone|somebody|a stranger|an unknown (person|party)) (else )?(has |had )?(just )?(changed|reset|accessed|opened|placed|emptied|withdrew|transferred|logged into|got (into|access))\b.{0,40}\b(my|our) (\w+ )?(account|card|password|email|details|money|savings|orders?|address|phone number|identity|login|pin|name)\b|\b(taken|took) over (my|our) (account|profile|email|number)\b|\baccount takeover\b|\b(used|stole|using) my (identity|card|details|name)\b|\b(never|didn'?t|did not|haven'?t|have not) (authori[sz]e|authori[sz]ed|make|made|place|placed|approve|approved)\b.{0,20}\b(these|those|this|that|them|it|any)\b.{0,20}\b(transactions?|withdrawals?|transfers?|purchases?|orders?)\b|\b(transactions?|withdrawals?|transfers?|purchases?|logins?|sign-?ins?)\b.{0,40}\b(i|we) (never|didn'?t|did not) (authori[sz]e|authori[sz]ed|make|made|recogni[sz]e|approve|approved)\b|\b(unauthori[sz]ed|unrecogni[sz]ed|fraudulent|suspicious) (\w+ )?(withdrawals?|purchases?|orders?|sign-?ins?|activity)\b|\b(data|details|information|records|passwords?) (was|were|has been|have been|got) (leaked|exposed|stolen|published|sold)\b|\bleak(ed)? (my|our|customer) (data|details|information|records|address)\b|\b(that|this|the) (login|sign-?in|purchase|order|transaction|withdrawal|transfer|device|payment)s? (wasn'?t|was not|weren'?t|were not) (me|mine|us|ours)\b/i,
    negatable: false,
    notHearsay: true,
    quote: true,
  }),
  R({
    kind: "churn",
    level: 3,
    label: "churn threat",
    re: /\b(cancel\w*|clos(e|ed|ing)|terminat\w*|end(ing)?|shut(ting)? down) (all |both |each )?((\w+ ){0,2}of )?(my|our|the) ((\w+ ){0,2})(accounts?|subscriptions?|memberships?|plans?|contracts?|agreements?|policies|policy|services?|relationship|partnership|deal)\b|\b(taking|take|took|moving|move) (my|our) (business|custom|money|account|accounts|savings|data) (elsewhere|somewhere else|to (another|a different|a rival|your competitors?|someone else))\b|\b(moved|moving|switched|switching|migrated|migrating|ported|porting) (\w+ ){0,3}(over )?to (a |an )?(another|different|rival|competing|new|other) (\w+ )?(platform|provider|company|bank|carrier|service|supplier|vendor|tool|network|insurer|app)s?\b|\b(look\w*|shop\w*|search\w*|hunt\w*) (around )?(for|at|into) (a |an |some )?(new|different|another|other|alternative) (\w+ ){0,2}(carriers?|providers?|banks?|suppliers?|vendors?|compan(y|ies)|services?|platforms?|tools?|options|insurers?|networks?)\b|\b(you'?ve|you have) lost (a|my|our|me as a) (customer|business|client)\b|\b(signed up|gone|going|went|go) with (another|a different|a rival|a competing) (company|provider|bank|carrier|supplier|vendor|service|platform|insurer|firm|agency|brand|airline|store|shop|network)\b|\b(signed up|gone|going|went|go) with (your competitors?|someone else)\b|\bi'?m done with (you|this (company|bank|service|app|place|shop))\b/i,
    negatable: true,
    notInQuestions: true,
    notHearsay: true,
    unless:
      /\b(just|only) (one|a single|the one)\b|\bsingle\b|\badd-?on\b|\bnot because of (the|your) (service|product)\b/i,
    quote: true,
  }),
  R({
    kind: "churn",
    level: 3,
    label: "churn threat",
    // "We will not be renewing" is the threat itself, so a negation does not cancel it.
    re: /\b(won'?t|will not|would not|wouldn'?t|not going to|are not|aren'?t|am not|'m not|do not|don'?t) (be )?(renew(ing)?|extend(ing)?|continu(e|ing)) (the|our|my|this|with)\b|\b(not|never) (be )?(renewing|coming back|returning)\b/i,
    notInQuestions: true,
    notHearsay: true,
    quote: true,
  }),
  R({
    kind: "refund",
    level: 3,
    label: "chargeback or refund demand",
    re: /\b(ask\w*|told|tell\w*|call\w*|contact\w*|get\w*|got|go\w*) (to )?(my|our) (bank|card issuer|card company|credit card company) (to )?(reverse|refund|return|block|stop|claw back|dispute|cancel|pull back)\b|\b(claw\w* back|pull\w* back) (the |my |our |that |this )?(\w+ )?(charges?|transactions?|payments?|money)\b|\b(i'?d|we'?d|i would|we would) like (a |my |our |the )?(full |partial )?(refund|reimbursement|compensation|money back)\b|\b(disput\w*|contest\w*|revers\w*|challeng\w*|query(ing)?|block\w*|cancel\w*) (\w+ ){0,2}(charges?|transactions?|payments?|debits?|direct debit) (with|through|via) (my|the) (bank|card|credit card|card issuer|card company|paypal)\b|\b(money|deposit|payment|fee|fees) back\b.{0,40}\b(bank|card|paypal|chargeback|today|now|immediately|or)\b|\b(give|send|return|pay|refund)\w* (me |us )?(my|our|the) (\w+ )?(money|deposit|payment|fee|fees) back\b|\b(i|we) (want|need|demand|expect|insist on|'d like|would like)\w* (to be |on being |being )?(reimbursed|refunded|compensated|paid back)\b|\b(i|we) (want|need|demand|expect|'d like|would like) (my|our|the|a) (\w+ )?(money|deposit|payment) back\b|\b(want|need|demand|expect|insist on) (a |my |our |the )?(partial |full |complete |proper )?(refund|reimbursement|compensation)\b/i,
    negatable: true,
    notInQuestions: true,
    notHearsay: true,
    quote: true,
  }),
  R({
    kind: "refund",
    level: 3,
    label: "disputes an unauthorised charge",
    re: /\b(unauthori[sz]ed|unrecogni[sz]ed|unapproved|unexpected) (\w+ )?(charges?|debits?|payments?|renewals?|billing)\b|\b(charges?|debits?|payments?|renewals?|billing)\b.{0,30}\b(i|we) (never|didn'?t|did not) (authori[sz]e|authori[sz]ed|agree to|agreed to|approve|approved|sign up for|signed up for|consent to|consented to)\b/i,
    notInQuestions: true,
    notHearsay: true,
    quote: true,
  }),
  R({
    kind: "public",
    level: 3,
    label: "public exposure threat",
    re: /\b(i'?ll|i will|going to|gonna|i'?m|we'?ll|we will|about to) (be )?(leav|post|writ|giv)\w* (a |an |my )?(\w+ )?(one|1|zero|0)[- ]star\b|\b(one|1)[- ]star reviews? (everywhere|on every)\b|\b(expect|watch for|look out for|wait for) (a|an|my) (\w+ ){0,3}(review|post|write-?up)\b|\b(writ\w*|wrote|talk\w*|go\w*) to (the |a |my )?(local |national )?(newspapers?|papers?|reporters?|media|tv station|consumer (show|programme|program))\b|\b(contact\w*|call\w*|tip\w* off) (the |a )?(local |national )?(newspapers?|reporters?|media|tv station)\b|\b(review|post|thread|video|complaint)s? (on|to) (trustpilot|yelp|tripadvisor|reddit|tiktok|twitter|facebook|youtube)\b.{0,40}\b(warn|everyone|avoid|honest|calm|truth)\w*|\btell(ing)? (everyone|everybody|all my (friends|followers|family|colleagues)) (to (avoid|stay away|steer clear|never|not)|(what|how) you)\b|\b(warn\w*) (everyone|others|people|other (parents|customers|people|buyers|drivers|users))\b/i,
    negatable: true,
    notHearsay: true,
    quote: true,
  }),
  R({
    kind: "repeat-contact",
    level: 3,
    label: "repeated failed contact",
    re: /\b(third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|\d+(rd|th)) (e-?mail|message|letter|complaint|ticket|chat|phone call|call|follow-?up|request)s?\b|\b(third|fourth|fifth|sixth|\d+(rd|th)) time (i'?ve |i have )?(writing|written|calling|called|contacting|contacted|emailing|emailed|reaching out|asking|asked|chasing|chased|messaging|explaining)\b|\b(no one|nobody|no-one|not one person|none of you) (has |have |ever |even |bothered to )*(reply|replies|replied|answer\w*|respond\w*|gets back|got back|get back|calls? back|called back|rings? back|follows? up|followed up|bothered)\b|\bstill (waiting|waitin) (for|on) (a |an |any )?(reply|response|answer|call ?back|callback|one of you)\b|\b(passed|bounced|transferred|shuffled) (around|from (\w+ ){1,2}to|between)\b|\bchas(ing|ed) (this|you|it|them|my \w+) (for|since)\b|\b(never|not once) (got|had|received) (a |any )?(reply|response|answer|call ?back|callback)\b|\bpromised (to )?(call|ring|email|get back)\w*\b.{0,30}\b(never|didn'?t|did not|no)\b/i,
    negatable: false,
    notHearsay: true,
    quote: true,
  }),
  R({
    kind: "manager",
    level: 3,
    label: "asks for a manager",
    re: /\bsomeone (higher up|more senior|in charge|with (more |real |actual )?authority|who can (actually )?(make (a |the )?decisions?|authori[sz]e|approve))\b|\b(speak|talk|put me through|transfer me|escalate it) .{0,20}\bhigher up\b|\bescalat(e|ed|ing) (this|it|my (case|complaint|ticket|issue|request)|the (case|complaint|matter))\b|\b(reviewed by|speak to|talk to|escalate to|hear from|speak with) (your |the |senior )?(management|leadership|executives?|head office|ceo|director)\b|\bsenior (member of staff|staff member|person|agent|manager|colleague)\b|\bformal complaint\b|\b(head|team) of (customer )?(support|service|complaints)\b/i,
    negatable: true,
    notHearsay: true,
    unless: /\b(my|our|office|account|store) manager\b|\bi'?m (a|the) manager\b/i,
    quote: true,
  }),
  R({
    kind: "impact",
    level: 3,
    label: "serious business impact",
    re: /\blos(ing|t|e) (\w+ )?(orders|sales|customers|revenue|business|clients|bookings|income|deals)\b|\b(complete|total|full|major|company-wide|site-wide|nationwide) (outage|shutdown|blackout)\b|\b(all|every one of|everyone in|each of|the whole|our whole|our entire|the entire) (of )?(our |the )?(\d+ )?(staff|employees|team|users|agents|drivers|stores|locations|offices|company|workforce|clients|customers)\b.{0,40}\b(locked out|can'?t|cannot|unable|down|offline|haven'?t been paid|not been paid|stuck)\b|\b(haven'?t|have not|hasn'?t|has not|didn'?t|did not|weren'?t|were not) (been|get|got) paid\b|\bpayroll (didn'?t|did not|failed|hasn'?t|has not|won'?t)\b|\b(years|months|weeks) of (work|data|records|photos|files|history)\b.{0,30}\b(gone|lost|deleted|wiped|erased)\b|\bwiped (out )?(all|every|our|my) (\w+ )?(data|files|records|photos|contacts|history|work|orders|customers|inventory|projects?)\b|\bproduction (is )?down\b|\b(our|the) (clinic|shop|store|restaurant|business|practice|site|website|warehouse|office|checkout|till|system|platform)s? (has been|have been|is|are|was|were|went) (down|offline)\b.{0,40}\b(all day|since|for (hours|days)|customers|patients|clients|orders|can'?t|cannot)\b|\b(business|shop|store|restaurant|clinic|practice) (is )?(at a standstill|dead in the water)\b/i,
    negatable: true,
    notHearsay: true,
    quote: true,
  }),
  // medium: a real problem that keeps happening or is hurting the customer
  R({
    kind: "repeat-problem",
    level: 2,
    label: "recurring problem",
    re: /\b(second|third|fourth|fifth|\d+(nd|rd|th)) (time|replacement|repair|box|one)\b|\b(second|third|fourth|fifth) (\w+ ){1,4}(that|which) (arrived|came|broke|failed|leaked|cracked|stopped)\b|\b(two|three|four|five|several|multiple) (wrong|missing|broken|damaged|late|cold|lost|failed) \w+|\bevery (single )?time\b|\b(three|four|five|several|\d+) times (this|a|now)\b|\bhappened (\w+ ){0,2}times\b|\bkeeps? (happening|crashing|dropping|asking)\b/i,
  }),
  R({
    kind: "frustration",
    level: 2,
    label: "frustration",
    re: /(?<!\b(kind of|kinda|a bit|a little|slightly|somewhat|mildly) )\b(frustrat\w*|annoy(ed|ing)|ridiculous|unacceptable|not (okay|ok|cool|acceptable)|misleading|sneaky|bait and switch|stressed|nerve-wracking|embarrass\w*|wasted|pénible|messing up|fell behind|angry|furious|livid|fed up|sick of|tired of|getting old|nobody told me|this is the worst)\b/i,
    negatable: true,
  }),
  R({
    kind: "harm",
    level: 2,
    label: "problem is hurting the customer",
    re: /\b(missed (my|our|the|a|two|three) \w+|(hours?|days?) on hold|on hold for|half my day|(can'?t|cannot|unable to|couldn'?t) (buy|use|read|access|log ?in|get in|see|check in|pay|work|sleep)\b|cant (buy|use|read|access|login|see)|locked out|been \d+ days|delayed (\d+|by|for|six|five|four|three|two)|paid (full|for)|i pay for it|threw it out|what i paid to avoid)/i,
    negatable: true,
  }),
  // low: a routine defect or request
  R({
    kind: "routine",
    level: 1,
    label: "routine issue or request",
    re: /\b(doesn'?t|dosn'?t|dosent|does not|won'?t|isn'?t|not|never) (work|works|working|load|loading|sync|syncing|show|showing|open|print|arrive)\b|\b(doesn'?t|does not|didn'?t) do anything\b|\b(stopped|not) working\b|\b(bug|broke|broken|leak\w*|crack(ed|s)?|crash\w*|freez\w*|jams?|squeak\w*|glitch\w*|error|unrelated|wrong (size|item|colou?r|address|size)|can'?t find|unnecessary|dented|damaged|shattered|late)\b|\b(can you|could you|please|i need to|i'?d like to|how do i|how can i|can i) (resend|re-?issue|update|change|cancel|remove|refund|send|fix|pause|reset|skip)\b/i,
    negatable: true,
  }),
  // low: explicitly minor
  R({
    kind: "minor",
    level: 1,
    label: "minor issue",
    re: /\b(minor|small (thing|bug|issue)|not a big deal|no big deal|would be nice|i wish|wish (the|it|there)|nice to have|sometimes|otherwise fine|workaround|lol)\b/i,
  }),
  R({
    kind: "resolution",
    level: 0,
    label: "issue resolved",
    re: /\b(thank god|it worked|that worked|works now|working now|that was fast|happy now|good ending|never mind|nevermind|my bad|sorry for (yelling|the panic|the drama|coming in hot)|came in hot|lifesaver|life saver|got them|went through|(they'?re|it'?s) all there|all sorted|problem solved|fixed it|that fixed|you'?re a star)\b/i,
  }),
  R({
    kind: "polite-thanks",
    level: 0,
    label: "thanks",
    re: /\b(thank you|thanks|thx|ty|appreciate it|cheers)\b/i,
  }),
];

const NEGATORS =
  /^(not|never|no|nobody|none|nor|neither|without|hardly|didn'?t|don'?t|doesn'?t|won'?t|wouldn'?t|isn'?t|wasn'?t|aren'?t|weren'?t|can'?t|cannot|haven'?t|hasn'?t|shouldn'?t|no-one)$/i;

// Words that may sit between a negation and what it negates: "not going to cancel", "no plans to sue".
const NEGATION_BRIDGE =
  /^(going|gonna|to|be|being|been|planning|plan|plans|want|wanting|trying|intend|intending|intention|about|ever|really|actually|even|i|i'm|we|we're|me|us|a|an|the|my|our|any|of|thinking|considering|like|would|will|have|had|need|needs|was|were|is|are|got|get|looking|at|for|this|it|calling|asking|leaving|leave|posting|post|writing|write|giving|give|filing|file|taking|take|one|single|so|quite|someone|anyone|anything|anybody)$/i;

function negatedBefore(prefix: string): boolean {
  const clause = prefix.split(/[,;:]|\bbut\b/i).pop() ?? "";
  const words = clause.trim().split(/\s+/).filter(Boolean).reverse();
  for (const w of words.slice(0, 6)) {
    const bare = w.replace(/[^\w'-]/g, "");
    if (NEGATORS.test(bare) || /n't$/i.test(bare)) return true;
    if (!NEGATION_BRIDGE.test(bare)) return false;
  }
  return false;
}

const HEARSAY =
  /\b(someone|somebody|people|others|other users|he|she|they|a (friend|coworker|colleague|guy|user|neighbou?r)|my (husband|wife|boss|partner|friend|colleague|manager|dad|mom|father|mother|son|daughter))\b.{0,50}\b(said|says|wrote|writes|threaten\w*|yelled|told|calling|called|claims?|claimed|posted|suggested)\b/i;
const HYPOTHETICAL =
  /\b(if i (ever|were to|decide|wanted)|what happens if|in case|whether (i|we) (can|could|should))\b/i;

function describe(rule: Rule, matched: string): string {
  const words = matched.trim().replace(/\s+/g, " ");
  return rule.quote && words.length <= 60 ? `${rule.label}: '${words}'` : rule.label;
}

/**
 * The cues in one piece of customer text (a review, an answer, a message). Quoted words, negated
 * phrases, hearsay and questions about an action are left out, each where the rule says so.
 */
export function findCues(text: string): Cue[] {
  const found: Cue[] = [];
  const seen = new Set<string>();
  for (const sentence of sentences(stripQuotes(text))) {
    const question = isQuestion(sentence);
    for (const rule of RULES) {
      const re = new RegExp(
        rule.re.source,
        rule.re.flags.includes("g") ? rule.re.flags : `${rule.re.flags}g`,
      );
      for (const m of sentence.matchAll(re)) {
        const prefix = sentence.slice(0, m.index);
        if (rule.unless?.test(sentence)) continue;
        if (rule.negatable && negatedBefore(prefix)) continue;
        if (rule.notInQuestions && (question || HYPOTHETICAL.test(prefix))) continue;
        if (rule.notHearsay && HEARSAY.test(prefix)) continue;
        const label = describe(rule, m[0]);
        const key = `${rule.kind}:${label}`;
        if (seen.has(key)) continue;
        seen.add(key);
        found.push({ kind: rule.kind, level: rule.level, label });
      }
    }
  }
  return found;
}

/** The highest level any cue sets, 0 when there is none. */
export function cueFloor(cues: readonly Cue[]): LevelNumber {
  let top: LevelNumber = 0;
  for (const c of cues) if (c.level > top) top = c.level;
  return top;
}
