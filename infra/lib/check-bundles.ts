// After a synth with bundling (scripts/check-lambda-bundling): every function's
// asset must hold an executable `bootstrap` built for the function's architecture.
import * as fs from 'node:fs';
import * as path from 'node:path';

// ELF e_machine values.
const MACHINES: Record<string, number> = { x86_64: 0x3e, arm64: 0xb7 };

function check(outdir: string, stackName: string): string[] {
  const template = JSON.parse(fs.readFileSync(path.join(outdir, `${stackName}.template.json`), 'utf8'));
  const problems: string[] = [];
  let functions = 0;
  for (const [id, r] of Object.entries<any>(template.Resources)) {
    if (r.Type !== 'AWS::Lambda::Function') continue;
    functions++;
    const hash = String(r.Properties.Code?.S3Key ?? '').replace(/\.zip$/, '');
    const arch = r.Properties.Architectures?.[0] ?? 'x86_64';
    const bootstrap = path.join(outdir, `asset.${hash}`, 'bootstrap');
    if (!fs.existsSync(bootstrap)) {
      problems.push(`${id}: no ${bootstrap}`);
      continue;
    }
    const header = fs.readFileSync(bootstrap).subarray(0, 20);
    if (header.readUInt32BE(0) !== 0x7f454c46) problems.push(`${id}: ${bootstrap} is not an ELF executable`);
    else if (header.readUInt16LE(18) !== MACHINES[arch]) problems.push(`${id}: ${bootstrap} is not built for ${arch}`);
    else if ((fs.statSync(bootstrap).mode & 0o111) === 0) problems.push(`${id}: ${bootstrap} is not executable`);
    else console.log(`${id}: ${arch} bootstrap, ${(fs.statSync(bootstrap).size / 1e6).toFixed(1)} MB`);
  }
  if (functions === 0) problems.push('no Lambda function in the template');
  return problems;
}

const [outdir = 'cdk.out', stackName = 'Switchyard'] = process.argv.slice(2);
const problems = check(outdir, stackName);
if (problems.length > 0) {
  console.error(problems.join('\n'));
  process.exit(1);
}
