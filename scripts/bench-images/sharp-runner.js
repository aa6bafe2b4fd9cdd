#!/usr/bin/env node
// The sharp side of `switchyard bench images`: a long-lived child that the
// benchmark drives over stdin/stdout (one JSON object per line each way), so
// that both sides are measured in interleaved rounds under the same load.
//
// usage: UV_THREADPOOL_SIZE=1 node sharp-runner.js SHARP_DIR
// requests:
//   {"op":"time","file":F,"variants":[V...],"options":O,"iterations":N}
//      -> {"cpu_ms":per-iteration CPU ms,"wall_ms":per-iteration wall ms}
//   {"op":"write","file":F,"variants":[V...],"out":[path...]} -> {"ok":true}
//   {"op":"raw","file":F,"variants":[V...],"out":[path...]}
//      -> {"sizes":[[width,height,channels]...]}: the resized pixels before encoding
// where V = {"width","height","fit":"cover"|"contain","format":"jpeg"|"webp","quality"}
// and O (optional, every op) = extra sharp resize options, e.g. {"fastShrinkOnLoad":false};
// one iteration makes every variant in the list, each as its own pipeline
// (the classic thumbnailing Lambda: decode once per output size).
'use strict';
const fs = require('fs');
const path = require('path');
const readline = require('readline');

const sharpDir = process.argv[2];
if (!sharpDir) {
  console.error('usage: node sharp-runner.js SHARP_DIR');
  process.exit(2);
}
const sharp = require(path.join(sharpDir, 'node_modules', 'sharp'));
// One thread, and no operation cache: repeated identical pipelines must do the work each time.
sharp.concurrency(1);
sharp.cache(false);

const inputs = new Map();
function load(file) {
  if (!inputs.has(file)) inputs.set(file, fs.readFileSync(file));
  return inputs.get(file);
}

function resized(buf, v, options) {
  const fit = v.fit === 'contain' ? 'inside' : 'cover';
  return sharp(buf).resize(v.width, v.height, { fit, position: 'centre', kernel: 'lanczos3', ...options });
}

function make(buf, v, options) {
  const img = resized(buf, v, options);
  return (v.format === 'webp' ? img.webp({ quality: v.quality }) : img.jpeg({ quality: v.quality })).toBuffer();
}

async function handle(req) {
  const buf = load(req.file);
  if (req.op === 'time') {
    const cpu0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < req.iterations; i++) {
      for (const v of req.variants) await make(buf, v, req.options);
    }
    const wall = Number(process.hrtime.bigint() - t0) / 1e6;
    const cpu = process.cpuUsage(cpu0);
    return { cpu_ms: (cpu.user + cpu.system) / 1000 / req.iterations, wall_ms: wall / req.iterations };
  }
  if (req.op === 'write') {
    for (let i = 0; i < req.variants.length; i++) {
      fs.writeFileSync(req.out[i], await make(buf, req.variants[i], req.options));
    }
    return { ok: true };
  }
  if (req.op === 'raw') {
    const sizes = [];
    for (let i = 0; i < req.variants.length; i++) {
      const { data, info } = await resized(buf, req.variants[i], req.options).raw().toBuffer({ resolveWithObject: true });
      fs.writeFileSync(req.out[i], data);
      sizes.push([info.width, info.height, info.channels]);
    }
    return { sizes };
  }
  throw new Error(`unknown op ${req.op}`);
}

(async () => {
  const rl = readline.createInterface({ input: process.stdin });
  process.stdout.write(JSON.stringify({ ready: true, sharp: sharp.versions.sharp, vips: sharp.versions.vips }) + '\n');
  for await (const line of rl) {
    if (!line.trim()) continue;
    let reply;
    try {
      reply = await handle(JSON.parse(line));
    } catch (e) {
      reply = { error: String(e && e.message ? e.message : e) };
    }
    process.stdout.write(JSON.stringify(reply) + '\n');
  }
})();
