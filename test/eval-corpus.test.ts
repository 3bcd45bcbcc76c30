/**
 * The labelled corpus in eval/corpus/ keeps the form LABELLING.md gives it, and each item's split follows
 * from its id alone (so no choice, and no later edit, can move an item into or out of test).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { checkCorpus, splitOf } from "../eval/check-corpus.ts";

test("every corpus item is well formed, with an id used once", () => {
  const { problems, total } = checkCorpus();
  assert.deepEqual(problems.slice(0, 20), []);
  assert.ok(total > 0);
});

test("splits are fixed by the id's hash: 60 % train, 20 % dev, 20 % test", () => {
  // Known values, so a change of the rule shows as a failing test rather than silently reshuffled splits.
  assert.deepEqual(["rev-001", "chat-001", "rev-saa-001"].map(splitOf), ["train", "test", "test"]);
  const counts = { train: 0, dev: 0, test: 0 };
  for (let i = 0; i < 10_000; i++) counts[splitOf(`x-${i}`)]++;
  assert.ok(
    Math.abs(counts.train - 6016) < 300 && Math.abs(counts.test - 2000) < 300,
    JSON.stringify(counts),
  );
});
