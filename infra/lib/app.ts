// Builds the CDK app from context, for `cdk synth`/`deploy` and for the tests alike.
import * as path from 'node:path';
import * as cdk from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { ApiAuth, SwitchyardStack } from './switchyard-stack';
import { Topology, TopologyError, loadTopology } from './topology';

export const INFRA_DIR = path.resolve(__dirname, '..');
export const REPO_ROOT = path.resolve(INFRA_DIR, '..');
export const DEFAULT_TOPOLOGY = path.join(INFRA_DIR, 'build', 'topology.json');

// Feature flags the stack depends on, set here so tests and synth agree.
const FEATURE_FLAGS = {
  // Access logs are delivered through a bucket policy, not ACLs (buckets enforce owner-only objects).
  '@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy': true,
};

function choice<T extends string>(app: cdk.App, key: string, allowed: readonly T[], fallback: T): T {
  const value = app.node.tryGetContext(key) ?? fallback;
  if (!allowed.includes(value)) {
    throw new TopologyError(`context ${key}=${JSON.stringify(value)}: expected one of ${allowed.join(', ')}`);
  }
  return value as T;
}

function retention(app: cdk.App): logs.RetentionDays {
  const raw = app.node.tryGetContext('logRetentionDays') ?? 365;
  const days = Number(raw);
  const allowed = Object.values(logs.RetentionDays).filter((v): v is number => typeof v === 'number');
  if (!allowed.includes(days)) {
    throw new TopologyError(
      `context logRetentionDays=${JSON.stringify(raw)}: CloudWatch takes one of ${allowed.join(', ')}`,
    );
  }
  return days as logs.RetentionDays;
}

export interface BuildOptions {
  /** Context values, as `-c key=value` gives them. */
  readonly context?: Record<string, unknown>;
  /** A topology to use instead of reading the `topology` context file. */
  readonly topology?: Topology;
}

export function buildApp(options: BuildOptions = {}): { app: cdk.App; stack: SwitchyardStack } {
  const app = new cdk.App({ context: { ...FEATURE_FLAGS, ...options.context } });
  // `-c bundling=false` synthesises without building the Rust binaries; the CLI
  // refuses `aws:` keys on its command line, so it is set here, before any stack.
  if (String(app.node.tryGetContext('bundling')) === 'false') app.node.setContext('aws:cdk:bundling-stacks', []);
  const topologyPath = path.resolve(INFRA_DIR, app.node.tryGetContext('topology') ?? DEFAULT_TOPOLOGY);
  const topology = options.topology ?? loadTopology(topologyPath);
  const arch = choice(app, 'architecture', ['arm64', 'x86_64'] as const, 'arm64');
  const stack = new SwitchyardStack(app, app.node.tryGetContext('stackName') ?? 'Switchyard', {
    topology,
    repoRoot: REPO_ROOT,
    architecture: arch === 'arm64' ? lambda.Architecture.ARM_64 : lambda.Architecture.X86_64,
    logRetention: retention(app),
    bucketName: app.node.tryGetContext('bucketName'),
    uploadsBus: app.node.tryGetContext('uploadsBus'),
    apiAuth: choice<ApiAuth>(app, 'apiAuth', ['iam', 'none'], 'iam'),
    alarmEmail: app.node.tryGetContext('alarmEmail'),
    rustLog: app.node.tryGetContext('rustLog') ?? 'info',
    description: 'Switchyard: event-driven orders and images (infra/, generated from the topology)',
    // Deploys where the CLI's credentials point; synth stays offline and account-agnostic.
    env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
  });
  return { app, stack };
}
