#!/usr/bin/env node
// The product runs its TypeScript sources directly on Node's type stripping (Node >= 22.18 / 24 LTS).
import "../src/cli.ts";
