// Shared by the tests: the exported topology, and a synthesised template of it.
import * as fs from 'node:fs';
import { Template } from 'aws-cdk-lib/assertions';
import * as path from 'node:path';
import { DEFAULT_TOPOLOGY, INFRA_DIR, buildApp } from '../lib/app';
import { SwitchyardStack } from '../lib/switchyard-stack';
import { Topology, loadTopology } from '../lib/topology';

/** What `switchyard topology export` printed (scripts/test-infra writes it first). */
export const TOPOLOGY_PATH = process.env.SWITCHYARD_TOPOLOGY_JSON ?? DEFAULT_TOPOLOGY;

/** What `custom-switchyard topology export` printed: examples/custom-consumer's topology (scripts/test-infra writes it). */
export const CUSTOM_CONSUMER_TOPOLOGY =
  process.env.SWITCHYARD_CUSTOM_CONSUMER_TOPOLOGY_JSON ??
  path.join(INFRA_DIR, 'build', 'custom-consumer.topology.json');

export function exportedTopologyText(): string {
  if (!fs.existsSync(TOPOLOGY_PATH)) {
    throw new Error(
      `${TOPOLOGY_PATH} is missing: run \`cargo run -q -- topology export > infra/build/topology.json\` (scripts/test-infra does)`,
    );
  }
  return fs.readFileSync(TOPOLOGY_PATH, 'utf8');
}

/** A fresh copy each call, so a test may change it freely. */
export function exportedTopology(): Topology {
  return loadTopology(TOPOLOGY_PATH);
}

export interface Synth {
  stack?: SwitchyardStack;
  template: Template;
  json: { Resources: Record<string, Resource>; Outputs: Record<string, { Value: unknown }> };
}

export interface Resource {
  Type: string;
  Properties: Record<string, any>;
  Metadata?: Record<string, any>;
  DependsOn?: string[];
}

/** Synthesises without bundling: the Rust binaries need not exist for the template. */
export function synth(topology: Topology = exportedTopology(), context: Record<string, unknown> = {}): Synth {
  const { stack } = buildApp({ topology, context: { 'aws:cdk:bundling-stacks': [], ...context } });
  const template = Template.fromStack(stack);
  return { stack, template, json: template.toJSON() as Synth['json'] };
}

export function resourcesOfType(s: Synth, type: string): [string, Resource][] {
  return Object.entries(s.json.Resources).filter(([, r]) => r.Type === type);
}

/** The logical id a `{Ref}` or `{Fn::GetAtt}` points at. */
export function refId(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as Record<string, any>;
  return v.Ref ?? v['Fn::GetAtt']?.[0];
}

/** The one resource of a type whose properties satisfy `match`; fails if there is not exactly one. */
export function only(s: Synth, type: string, match: (props: Record<string, any>) => boolean): [string, Resource] {
  const found = resourcesOfType(s, type).filter(([, r]) => match(r.Properties ?? {}));
  if (found.length !== 1) throw new Error(`expected exactly one ${type} matching, found ${found.length}`);
  return found[0];
}

export function asArray<T>(v: T | T[] | undefined): T[] {
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

/** Every policy statement in the template: IAM policies, role inline policies, and resource policies. */
export function allStatements(s: Synth): { owner: string; statement: Record<string, any> }[] {
  const out: { owner: string; statement: Record<string, any> }[] = [];
  for (const [id, r] of Object.entries(s.json.Resources)) {
    const p = r.Properties ?? {};
    const docs = [p.PolicyDocument, p.KeyPolicy, ...asArray<any>(p.Policies).map((x) => x.PolicyDocument)].filter(
      Boolean,
    );
    for (const doc of docs) for (const statement of asArray<any>(doc.Statement)) out.push({ owner: id, statement });
  }
  return out;
}
