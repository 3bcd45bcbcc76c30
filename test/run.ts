/**
 * `npm test`: prepares what every test file shares (a migrated template database each test copies,
 * a local CA the product trusts through NODE_EXTRA_CA_CERTS), then runs Node's test runner.
 */
import { spawn } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import postgres from "postgres";
import { generate } from "selfsigned";
import { migrateDatabase } from "../src/db/migrate.ts";

const PG = process.env.TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432";
// Every run names its databases after its own pid, so runs side by side never drop each other's.
const RUN = `es_t_${process.pid}`;
const TEMPLATE = `${RUN}_template`;
// Per run as well: a second run writing its CA over this one would break every TLS handshake here.
const caDir = resolve(".test-ca", String(process.pid));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function dropRunDatabases(): Promise<void> {
  const admin = postgres(`${PG}/postgres`, { max: 1, onnotice: () => {} });
  try {
    const mine = await admin`select datname from pg_database where datname like ${`${RUN}_%`}`;
    for (const { datname } of mine) await admin.unsafe(`drop database if exists "${datname}" with (force)`);
  } finally {
    await admin.end();
  }
}

async function prepareTemplate(): Promise<void> {
  const admin = postgres(`${PG}/postgres`, { max: 1, onnotice: () => {} });
  try {
    // Databases of runs that were interrupted: their process is gone.
    const all = await admin`select datname from pg_database where datname like 'es_t_%'`;
    for (const { datname } of all) {
      const pid = Number(/^es_t_(\d+)_/.exec(datname)?.[1]);
      if (Number.isInteger(pid) && !alive(pid))
        await admin.unsafe(`drop database if exists "${datname}" with (force)`);
    }
  } finally {
    await admin.end();
  }
  await migrateDatabase(`${PG}/${TEMPLATE}`);
}

async function prepareCa(): Promise<string> {
  mkdirSync(caDir, { recursive: true });
  const notAfter = new Date(Date.now() + 7 * 86400_000);
  // Valid from a day back, so a worker started with its clock behind (the clock-skew tests) still trusts them.
  const notBefore = new Date(Date.now() - 86400_000);
  const ca = await generate([{ name: "commonName", value: "Escalation Shield test CA" }], {
    keyType: "ec",
    algorithm: "sha256",
    notBeforeDate: notBefore,
    notAfterDate: notAfter,
    extensions: [
      { name: "basicConstraints", cA: true, critical: true },
      { name: "keyUsage", keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    ],
  });
  const leaf = await generate([{ name: "commonName", value: "localhost" }], {
    keyType: "ec",
    algorithm: "sha256",
    notBeforeDate: notBefore,
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
    "--test-concurrency=2",
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
      TEST_DB_PREFIX: RUN,
    },
  },
);
child.on("exit", (code, signal) => {
  rmSync(caDir, { recursive: true, force: true });
  dropRunDatabases().then(
    () => process.exit(code ?? (signal ? 1 : 0)),
    (err: unknown) => {
      console.error("could not drop this run's databases:", err);
      process.exit(code ?? 1);
    },
  );
});
