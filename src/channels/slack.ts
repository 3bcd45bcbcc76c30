import { maskSecrets, USER_AGENT } from "../delivery/request.ts";
import { parseRetryAfter } from "../delivery/schedule.ts";
import { OutboundError } from "../errors.ts";
import { ATTEMPT_TIMEOUT_MS } from "../outbound/http.ts";
import { sealContext } from "../secrets/contexts.ts";
import { type Channel, noAnswer, readLimit, type Sent, type Verdict } from "./channel.ts";
import { slackMessage } from "./slack-message.ts";

/**
 * Slack incoming webhooks. The URL is the secret (sealed like a credential, masked everywhere it is shown);
 * the message is Block Kit rendered from the delivery's frozen payload at each attempt. Slack answers `ok`
 * (200) on success, a reason string otherwise: the permanent ones fail the delivery at once and mark the
 * destination failing, a 429 waits its `Retry-After` without spending an attempt, 5xx and network errors
 * retry on the schedule.
 */

/** Slack's answers that no retry will change (its incoming-webhook documentation). */
export const PERMANENT_SLACK_ERRORS: ReadonlySet<string> = new Set([
  "invalid_payload",
  "invalid_token",
  "no_service",
  "no_service_id",
  "no_team",
  "team_disabled",
  "channel_not_found",
  "channel_is_archived",
  "action_prohibited",
  "posting_to_general_channel_denied",
  "user_not_found",
]);

/** One message a second: Slack's documented limit for incoming webhooks. */
export const SLACK_DEFAULT_RATE_PER_SECOND = 1;

const EXCERPT_BYTES = 512;

/** `https://hooks.slack.com/services/T…/B…/****`: what the API and operational events show of a Slack URL. */
export function maskSlackUrl(url: string): string {
  const u = new URL(url);
  const parts = u.pathname.split("/").filter(Boolean);
  const kept = parts
    .slice(0, Math.min(parts.length - 1, 3))
    .map((p, i) => (i === 0 ? p : `${p.slice(0, 3)}…`));
  return `${u.origin}/${[...kept, "****"].join("/")}`;
}

function judge(status: number, body: string, retryAfter: string | string[] | undefined): Verdict {
  const answer = body.trim();
  if (status === 200 && answer === "ok") return { kind: "delivered" };
  if (status === 429) return { kind: "throttled", waitS: parseRetryAfter(retryAfter) ?? 1 };
  if (PERMANENT_SLACK_ERRORS.has(answer)) return { kind: "failed", reason: answer };
  // Another 2xx body is not Slack's `ok`: nothing says the message was posted, so it is tried again.
  return { kind: "retry", healthy: status < 500 };
}

export const slackChannel: Channel = {
  defaultRatePerSecond: SLACK_DEFAULT_RATE_PER_SECOND,
  digests: true,
  async send(deps, claimed, startedAt): Promise<Sent> {
    const sealed = claimed.credentialSealed;
    if (!sealed) throw new Error(`Slack destination ${claimed.webhookId} has no stored URL`);
    const url = deps.secrets.open(sealed, sealContext.credential(claimed.webhookId));
    const body = JSON.stringify(slackMessage(claimed.eventType, claimed.payload, claimed.automationName));
    const secrets = [url, new URL(url).pathname];
    try {
      const res = await deps.http.send({
        method: "POST",
        url,
        headers: { "content-type": "application/json", "user-agent": USER_AGENT },
        body,
        timeoutMs: ATTEMPT_TIMEOUT_MS,
        maxBodyBytes: readLimit(EXCERPT_BYTES, secrets),
      });
      const verdict = judge(res.status, res.bodyExcerpt, res.headers["retry-after"]);
      return {
        status: res.status,
        errorKind: verdict.kind === "failed" ? "slack" : null,
        errorMessage: verdict.kind === "failed" ? verdict.reason : null,
        responseExcerpt: maskSecrets(res.bodyExcerpt, secrets).slice(0, EXCERPT_BYTES),
        durationMs: res.durationMs,
        verdict,
      };
    } catch (err) {
      if (!(err instanceof OutboundError)) throw err;
      // The URL is the secret: an error naming it must not carry it into the history.
      return noAnswer(deps, claimed, err, secrets, startedAt);
    }
  },
};
