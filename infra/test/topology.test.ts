// A new consumer is a topology entry and nothing else; bad topologies and
// bad context values fail with errors that say what is wrong.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { REPO_ROOT, buildApp } from '../lib/app';
import { ConsumerSpec, Topology, TopologyError, envName, loadTopology, parseTopology } from '../lib/topology';
import { assertOnePerConsumer } from './bar';
import { exportedTopology, exportedTopologyText, only, refId, resourcesOfType, synth } from './helpers';
import { CUSTOM_CONSUMER_TOPOLOGY } from './helpers';

function withConsumers(...consumers: ConsumerSpec[]): Topology {
  const t = exportedTopology();
  t.consumers.push(...consumers);
  return t;
}

const auditor: ConsumerSpec = {
  name: 'order-auditor',
  handler: 'order-auditor',
  queue: { visibility_timeout_s: 10, max_receive_count: 4, batch_size: 20, batching_window_ms: 2000 },
  function: { timeout_s: 7, memory_mb: 512 },
  permissions: { table: 'read', publish: [] },
  subscriptions: [
    {
      bus: 'orders',
      rule: 'audit-large-orders',
      pattern: { 'detail-type': ['OrderPlaced'], detail: { total_cents: [{ numeric: ['>=', 100000] }] } },
    },
  ],
};

const thumbnailer: ConsumerSpec = {
  name: 'image-auditor',
  handler: 'image-auditor',
  queue: { visibility_timeout_s: 60, max_receive_count: 2, batch_size: 1, batching_window_ms: 0 },
  function: { timeout_s: 10, memory_mb: 128 },
  permissions: { blobs: { read: ['thumbnails/'], write: [] }, publish: [] },
  subscriptions: [
    {
      topic: 'images',
      filter_policy_scope: 'MessageBody',
      filter_policy: { 'detail-type': ['ImageUploaded'], detail: { content_type: [{ prefix: 'image/' }] } },
    },
  ],
};

describe('a new consumer in a copy of the topology', () => {
  it('gets its queue, DLQ, function, event source and rule or subscription, with no code change', () => {
    const base = synth();
    const s = synth(withConsumers(auditor, thumbnailer));
    for (const type of ['AWS::SQS::Queue', 'AWS::Lambda::Function', 'AWS::Lambda::EventSourceMapping']) {
      const added = type === 'AWS::SQS::Queue' ? 4 : 2;
      assert.equal(resourcesOfType(s, type).length, resourcesOfType(base, type).length + added, type);
    }

    const [dlqId] = only(s, 'AWS::SQS::Queue', (p) => p.QueueName === 'order-auditor-dlq');
    const [queueId, queue] = only(s, 'AWS::SQS::Queue', (p) => p.QueueName === 'order-auditor');
    assert.equal(refId(queue.Properties.RedrivePolicy.deadLetterTargetArn), dlqId);
    assert.equal(queue.Properties.RedrivePolicy.maxReceiveCount, 4);
    // 6 x the 7 s timeout beats the topology's 10 s.
    assert.equal(queue.Properties.VisibilityTimeout, 42);
    const [fnId, fn] = only(
      s,
      'AWS::Lambda::Function',
      (p) => p.Environment?.Variables?.SWITCHYARD_CONSUMER === 'order-auditor',
    );
    assert.equal(fn.Properties.MemorySize, 512);
    const [, esm] = only(s, 'AWS::Lambda::EventSourceMapping', (p) => refId(p.EventSourceArn) === queueId);
    assert.equal(refId(esm.Properties.FunctionName), fnId);
    assert.equal(esm.Properties.BatchSize, 20);
    assert.equal(esm.Properties.MaximumBatchingWindowInSeconds, 2);
    assert.deepEqual(esm.Properties.FunctionResponseTypes, ['ReportBatchItemFailures']);
    const [, rule] = only(s, 'AWS::Events::Rule', (p) => p.Name === 'audit-large-orders');
    assert.equal(
      JSON.stringify(rule.Properties.EventPattern),
      JSON.stringify(auditor.subscriptions[0] && (auditor.subscriptions[0] as any).pattern),
    );
    assert.equal(refId(rule.Properties.Targets[0].Arn), queueId);

    const [imageQueueId] = only(s, 'AWS::SQS::Queue', (p) => p.QueueName === 'image-auditor');
    only(s, 'AWS::SQS::Queue', (p) => p.QueueName === 'image-auditor-dlq');
    const [, sub] = only(s, 'AWS::SNS::Subscription', (p) => refId(p.Endpoint) === imageQueueId);
    assert.equal(sub.Properties.FilterPolicyScope, 'MessageBody');
    assert.equal(
      JSON.stringify(sub.Properties.FilterPolicy),
      JSON.stringify((thumbnailer.subscriptions[0] as any).filter_policy),
    );
    only(s, 'AWS::Lambda::EventSourceMapping', (p) => refId(p.EventSourceArn) === imageQueueId);
    // Its role reads thumbnails and nothing else of the bucket, and has no table access.
    const [, imageFn] = only(
      s,
      'AWS::Lambda::Function',
      (p) => p.Environment?.Variables?.SWITCHYARD_CONSUMER === 'image-auditor',
    );
    const [, policy] = only(s, 'AWS::IAM::Policy', (p) =>
      p.Roles.some((r: unknown) => refId(r) === refId(imageFn.Properties.Role)),
    );
    const actions = policy.Properties.PolicyDocument.Statement.flatMap((st: any) => [st.Action].flat());
    assert.ok(actions.includes('s3:GetObject'));
    assert.ok(!actions.some((a: string) => a.startsWith('dynamodb:') || a === 's3:PutObject'));
  });

  it('reads a topology file named by the `topology` context key', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'switchyard-infra-'));
    const file = path.join(dir, 'topology.json');
    fs.writeFileSync(file, JSON.stringify(withConsumers(auditor)));
    const { stack } = buildApp({ context: { topology: file, 'aws:cdk:bundling-stacks': [] } });
    assert.ok(stack.functions.has('order-auditor'));
    fs.rmSync(dir, { recursive: true });
  });
});

describe('FIFO', () => {
  const fifoConsumer = (name: string, subscription: ConsumerSpec['subscriptions'][number]): ConsumerSpec => ({
    name,
    handler: name,
    queue: { fifo: true, visibility_timeout_s: 30, max_receive_count: 3, batch_size: 10, batching_window_ms: 0 },
    function: { timeout_s: 5, memory_mb: 128 },
    permissions: { publish: [] },
    subscriptions: [subscription],
  });

  const onTopic = (topic: string, eventType: string): ConsumerSpec['subscriptions'][number] => ({
    topic,
    filter_policy_scope: 'MessageAttributes',
    filter_policy: { event_type: [eventType] },
  });

  it('makes .fifo queues and topics, with a message group on bus targets', () => {
    const t = withConsumers(
      fifoConsumer('ledger', onTopic('payments', 'OrderPaid')),
      fifoConsumer('sequencer', { bus: 'orders', rule: 'in-sequence', pattern: { source: ['switchyard.orders'] } }),
    );
    t.topics.push({ name: 'payments', fifo: true });
    const s = synth(t);
    const [dlqId] = only(s, 'AWS::SQS::Queue', (p) => p.QueueName === 'ledger-dlq.fifo');
    const [queueId, queue] = only(s, 'AWS::SQS::Queue', (p) => p.QueueName === 'ledger.fifo');
    assert.equal(queue.Properties.FifoQueue, true);
    assert.equal(queue.Properties.ContentBasedDeduplication, true);
    assert.equal(refId(queue.Properties.RedrivePolicy.deadLetterTargetArn), dlqId);
    const [topicId, topic] = only(s, 'AWS::SNS::Topic', (p) => p.TopicName === 'payments.fifo');
    assert.equal(topic.Properties.FifoTopic, true);
    const [, sub] = only(s, 'AWS::SNS::Subscription', (p) => refId(p.Endpoint) === queueId);
    assert.equal(refId(sub.Properties.TopicArn), topicId);
    const [, esm] = only(s, 'AWS::Lambda::EventSourceMapping', (p) => refId(p.EventSourceArn) === queueId);
    assert.equal(esm.Properties.MaximumBatchingWindowInSeconds, undefined);
    const [, rule] = only(s, 'AWS::Events::Rule', (p) => p.Name === 'in-sequence');
    assert.deepEqual(rule.Properties.Targets[0].SqsParameters, { MessageGroupId: 'in-sequence' });
    // EventBridge takes no FIFO queue as a target DLQ.
    assert.equal(rule.Properties.Targets[0].DeadLetterConfig, undefined);
  });

  it('refuses a FIFO queue on a standard topic, or with a batching window', () => {
    const t = withConsumers(fifoConsumer('ledger', onTopic('images', 'ImageUploaded')));
    assert.throws(() => synth(t), /consumer ledger: a FIFO queue cannot subscribe to the standard topic images/);
    const windowed = withConsumers(fifoConsumer('ledger', onTopic('images', 'ImageUploaded')));
    windowed.consumers.at(-1)!.queue.batching_window_ms = 1000;
    assert.throws(() => synth(windowed), /consumer ledger: Lambda takes no batching window on FIFO queues/);
  });
});

describe('context', () => {
  it('builds for x86_64 when asked, arm64 otherwise', () => {
    const s = synth(exportedTopology(), { architecture: 'x86_64' });
    for (const [, fn] of resourcesOfType(s, 'AWS::Lambda::Function'))
      assert.deepEqual(fn.Properties.Architectures, ['x86_64']);
  });

  it('opens the API only when asked, and then says why checkov may skip the route check', () => {
    const s = synth(exportedTopology(), { apiAuth: 'none', logRetentionDays: '30', bucketName: 'my-blobs' });
    const [, route] = resourcesOfType(s, 'AWS::ApiGatewayV2::Route')[0];
    assert.equal(route.Properties.AuthorizationType, 'NONE');
    assert.deepEqual(
      route.Metadata?.checkov?.skip?.map((x: { id: string }) => x.id),
      ['CKV_AWS_309'],
    );
    for (const [, g] of resourcesOfType(s, 'AWS::Logs::LogGroup')) assert.equal(g.Properties.RetentionInDays, 30);
    only(s, 'AWS::S3::Bucket', (p) => p.BucketName === 'my-blobs');
  });

  it('rejects values it does not know, naming the key', () => {
    const bad = (context: Record<string, unknown>, key: RegExp) =>
      assert.throws(
        () => synth(exportedTopology(), context),
        (e: Error) => e instanceof TopologyError && key.test(e.message),
      );
    bad({ architecture: 'sparc' }, /architecture="sparc".*arm64, x86_64/);
    bad({ apiAuth: 'open' }, /apiAuth="open"/);
    bad({ logRetentionDays: '17' }, /logRetentionDays="17"/);
    bad({ uploadsBus: 'nope' }, /uploadsBus: no bus named "nope"/);
  });
});

describe('bad topologies', () => {
  const rejects = (change: (t: any) => void, message: RegExp) => {
    const t = JSON.parse(exportedTopologyText());
    change(t);
    assert.throws(
      () => synth(parseTopology(t)),
      (e: Error) => e instanceof TopologyError && message.test(e.message),
      String(message),
    );
  };

  it('names what is wrong and where', () => {
    const consumers = exportedTopology().consumers;
    const onBus = consumers.findIndex((c) => 'bus' in c.subscriptions[0]);
    const onTopic = consumers.findIndex((c) => 'topic' in c.subscriptions[0]);
    rejects(
      (t) => (t.consumers[onBus].subscriptions[0].bus = 'nowhere'),
      new RegExp(`consumers\\[${onBus}\\]\\.subscriptions\\[0\\]: no bus named "nowhere"`),
    );
    rejects(
      (t) => (t.consumers[onTopic].subscriptions[0].topic = 'nowhere'),
      new RegExp(`consumers\\[${onTopic}\\]\\.subscriptions\\[0\\]: no topic named "nowhere"`),
    );
    rejects(
      (t) => (t.consumers[0].queue.batch_size = 0),
      /consumers\[0\]\.queue\.batch_size: expected an integer in 1\.\.=10000, got 0/,
    );
    rejects((t) => (t.consumers[0].function.timeout_s = 901), /consumers\[0\]\.function\.timeout_s/);
    rejects((t) => (t.consumers[0].name = t.consumers[1].name), /is declared twice/);
    rejects((t) => (t.consumers[0].name = 'bad name'), /use letters, digits and -/);
    rejects((t) => (t.api.permissions.blobs.read = ['*']), /api\.permissions\.blobs\.read\[0\]: blob prefix "\*"/);
    rejects((t) => (t.consumers[0].permissions.table = 'admin'), /expected "read" or "read-write"/);
    rejects((t) => (t.consumers[0].subscriptions = []), /has no subscription/);
    rejects((t) => (t.buses[0].fifo = true), /EventBridge buses cannot be FIFO/);
    rejects((t) => delete t.consumers[onBus].subscriptions[0].pattern, /pattern: expected an object/);
    rejects(
      (t) => (t.stream_consumers[0].filter_criteria = ['{"eventName": ["INSERT"]}']),
      /stream_consumers\[0\]\.filter_criteria\[0\]: expected an object/,
    );
  });

  it('refuses what Lambda cannot do, instead of deploying something else', () => {
    rejects((t) => (t.consumers[0].queue.batching_window_ms = 1500), /batching_window_ms 1500 is not whole seconds/);
    rejects((t) => {
      t.consumers[0].queue.batch_size = 50;
      t.consumers[0].queue.batching_window_ms = 0;
    }, /batching_window_ms > 0 for batches over 10/);
    rejects(
      (t) => (t.stream_consumers[0].filter_criteria = Array(6).fill({ eventName: ['INSERT'] })),
      /stream_consumers\[0\]\.filter_criteria: at most 5 filters \(Lambda's limit\)/,
    );
  });

  it('says how to make the file when it is missing', () => {
    assert.throws(
      () => loadTopology('/nonexistent/topology.json'),
      (e: Error) => /cannot read \/nonexistent\/topology.json.*topology export/.test(e.message),
    );
  });
});

describe('env var names', () => {
  it('match what the Lambda binaries read', () => {
    assert.equal(envName('SWITCHYARD_BUS_', 'orders'), 'SWITCHYARD_BUS_ORDERS');
    assert.equal(envName('SWITCHYARD_TOPIC_', 'images.fifo'), 'SWITCHYARD_TOPIC_IMAGES_FIFO');
    assert.equal(envName('SWITCHYARD_BUS_', 'orders-v2'), 'SWITCHYARD_BUS_ORDERS_V2');
  });
});

describe('a consumer from a crate of its own (examples/custom-consumer)', () => {
  // What the example's own binary printed (`custom-switchyard topology export`; scripts/test-infra writes it).
  const example = (): Topology => loadTopology(CUSTOM_CONSUMER_TOPOLOGY);

  it('gets its queue, DLQ, function from its own crate, event source and rule beside the built-in ones', () => {
    const t = example();
    const builtin = exportedTopology();
    assert.deepEqual(
      t.consumers.map((c) => c.name),
      [...builtin.consumers.map((c) => c.name), 'audit-log'],
    );
    const s = synth(t);
    assertOnePerConsumer(s, t);
    const [dlqId] = only(s, 'AWS::SQS::Queue', (p) => p.QueueName === 'audit-log-dlq');
    const [queueId, queue] = only(s, 'AWS::SQS::Queue', (p) => p.QueueName === 'audit-log');
    assert.equal(refId(queue.Properties.RedrivePolicy.deadLetterTargetArn), dlqId);
    const [fnId, fn] = only(
      s,
      'AWS::Lambda::Function',
      (p) => p.Environment?.Variables?.SWITCHYARD_CONSUMER === 'audit-log',
    );
    assert.equal(fn.Properties.Description, 'Switchyard audit-log (audit-log)');
    const [, esm] = only(s, 'AWS::Lambda::EventSourceMapping', (p) => refId(p.EventSourceArn) === queueId);
    assert.equal(refId(esm.Properties.FunctionName), fnId);
    const [, rule] = only(s, 'AWS::Events::Rule', (p) => p.Name === 'audit-order-lifecycle');
    assert.equal(refId(rule.Properties.Targets[0].Arn), queueId);
    // Built from the example's crate and binary; the built-in ones from consumers/.
    assert.deepEqual(s.stack!.builds.get('audit-log'), {
      manifestPath: path.join(REPO_ROOT, 'examples', 'custom-consumer', 'Cargo.toml'),
      binary: 'audit-log',
    });
    assert.deepEqual(s.stack!.builds.get('notifier'), {
      manifestPath: path.join(REPO_ROOT, 'consumers', 'Cargo.toml'),
      binary: 'notifier',
    });
  });

  it('refuses a package outside the repository, or one with no Cargo.toml', () => {
    const outside = example();
    outside.consumers.at(-1)!.function.package = '../elsewhere';
    assert.throws(() => parseTopology(outside, 'test'), /without `\.\.`/);
    const missing = example();
    missing.consumers.at(-1)!.function.package = 'examples/no-such-crate';
    assert.throws(() => synth(missing), /no-such-crate.*Cargo\.toml/);
  });
});
