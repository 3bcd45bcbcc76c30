/**
 * `npm test`: prepares what every test file shares (a migrated template database each test copies,
 * a local CA the product trusts through NODE_EXTRA_CA_CERTS), then runs Node's test runner.
 */
import { spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import postgres from "postgres";
import { generate } from "selfsigned";
import { migrateDatabase } from "../src/db/migrate.ts";

const PG = process.env.TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432";
const TEMPLATE = "es_test_template";
const caDir = resolve(".test-ca");

async function prepareTemplate(): Promise<void> {
  const admin = postgres(`${PG}/postgres`, { max: 1, onnotice: () => {} });
  try {
    // Databases left by an interrupted run of an earlier session.
    const stale = await admin`select datname from pg_database where datname like 'es_t_%'`;
    for (const { datname } of stale) await admin.unsafe(`drop database if exists "${datname}" with (force)`);
    await admin.unsafe(`drop database if exists ${TEMPLATE} with (force)`);
  } finally {
    await admin.end();
  }
  await migrateDatabase(`${PG}/${TEMPLATE}`);
}

async function prepareCa(): Promise<string> {
  mkdirSync(caDir, { recursive: true });
  const notAfter = new Date(Date.now() + 7 * 86400_000);
  const ca = await generate([{ name: "commonName", value: "Escalation Shield test CA" }], {
    keyType: "ec",
    algorithm: "sha256",
    notAfterDate: notAfter,
    extensions: [
      { name: "basicConstraints", cA: true, critical: true },
      { name: "keyUsage", keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    ],
  });
  const leaf = await generate([{ name: "commonName", value: "localhost" }], {
    keyType: "ec",
    algorithm: "sha256",
    notAfterDate: notAfter,
    ca: { key: ca.private, cert: ca.cert },
    extensions: [
      { name: "basicConstraints", cA: false },
      { name: "keyUsage", digitalSignature: true, keyEncipherment: true },
      { name: "extKeyUsage", serverAuth: true },
      {
        name: "subjectAltName",
        altNames: [
          { type: 2, value: "localhost" },
          { type: 7, ip: "127.0.0.1" },
          { type: 7, ip: "::1" },
        ],
      },
    ],
  });
  writeFileSync(join(caDir, "ca.pem"), ca.cert);
  writeFileSync(join(caDir, "server.pem"), leaf.cert);
  writeFileSync(join(caDir, "server.key"), leaf.private);
  return join(caDir, "ca.pem");
}

await prepareTemplate();
const caFile = await prepareCa();
const files = process.argv.slice(2);
const child = spawn(
  process.execPath,
  [
    "--test",
    "--test-concurrency=4",
    "--test-timeout=180000",
    ...(files.length > 0 ? files : ["test/**/*.test.ts"]),
  ],
  {
    stdio: "inherit",
    env: {
      ...process.env,
      NODE_EXTRA_CA_CERTS: caFile,
      TEST_CA_DIR: caDir,
      TEST_PG_URL: PG,
      TEST_TEMPLATE_DB: TEMPLATE,
    },
  },
);
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
