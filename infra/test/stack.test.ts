// The stack synthesised from the topology that `switchyard topology export`
// printed: one set of resources per consumer, patterns and filter policies
// exactly as exported, and the security posture the issue asks for.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { Match } from 'aws-cdk-lib/assertions';
import {
  Synth,
  allStatements,
  asArray,
  exportedTopology,
  exportedTopologyText,
  only,
  refId,
  resourcesOfType,
  synth,
} from './helpers';
import {
  IDEMPOTENCY_KEYS,
  IDEMPOTENCY_WRITE,
  ITERATOR_AGE_ALARM,
  TABLE_READ,
  TABLE_WRITE,
  TTL_ATTRIBUTE,
  pascal,
} from '../lib/switchyard-stack';
import * as bar from './bar';
import { assertFilterPoliciesExact, assertOnePerConsumer, assertPatternsExact } from './bar';
import {
  ConsumerSpec,
  Topology,
  dlqName,
  envName,
  isBusSubscription,
  onFailureQueueName,
  queueName,
} from '../lib/topology';

let topology: Topology;
let s: Synth;

before(() => {
  topology = exportedTopology();
  s = synth(topology);
});

const queueByName = (name: string) => bar.queueByName(s, name);
const functionOf = (name: string) => bar.functionOf(s, name);
const policyOfRole = (roleId: string) =>
  only(s, 'AWS::IAM::Policy', (p) => asArray<any>(p.Roles).some((r) => refId(r) === roleId))[1].Properties
    .PolicyDocument.Statement as Record<string, any>[];
const actionsOf = (statements: Record<string, any>[]) => statements.flatMap((st) => asArray<string>(st.Action));

describe('the topology file', () => {
  it('is what the Rust side exported, and names consumers of every kind', () => {
    const raw = JSON.parse(exportedTopologyText());
    assert.deepEqual(
      raw.consumers.map((c: ConsumerSpec) => c.name),
      topology.consumers.map((c) => c.name),
    );
    assert.ok(
      topology.consumers.some((c) => c.subscriptions.some(isBusSubscription)),
      'a bus subscriber',
    );
    assert.ok(
      topology.consumers.some((c) => c.subscriptions.some((x) => !isBusSubscription(x))),
      'a topic subscriber',
    );
    assert.ok(topology.stream_consumers.length > 0, 'a stream consumer');
  });
});

describe('resource counts', () => {
  it('has one queue + DLQ + function + event source per consumer, and the stream consumer, API, bus and topic', () => {
    const c = topology.consumers.length;
    const sc = topology.stream_consumers.length;
    s.template.resourceCountIs('AWS::SQS::Queue', 2 * c + sc);
    s.template.resourceCountIs('AWS::Lambda::Function', c + sc + 1);
    s.template.resourceCountIs('AWS::Lambda::EventSourceMapping', c + sc);
    s.template.resourceCountIs('AWS::Events::EventBus', topology.buses.length);
    // The topology's topics, plus the alarm topic.
    s.template.resourceCountIs('AWS::SNS::Topic', topology.topics.length + 1);
    const busSubs = topology.consumers.flatMap((x) => x.subscriptions.filter(isBusSubscription));
    const topicSubs = topology.consumers.flatMap((x) => x.subscriptions.filter((y) => !isBusSubscription(y)));
    // Each bus subscription is a rule; one more forwards S3 uploads.
    s.template.resourceCountIs('AWS::Events::Rule', busSubs.length + 1);
    // Each topic subscription, and the alarm recipient's.
    s.template.resourceCountIs('AWS::SNS::Subscription', topicSubs.length + 1);
    s.template.resourceCountIs('AWS::DynamoDB::Table', 1);
    s.template.resourceCountIs('AWS::ApiGatewayV2::Api', 1);
    s.template.resourceCountIs('AWS::KMS::Key', 1);
    assertOnePerConsumer(s, topology);
  });
});

describe('each consumer', () => {
  it('has a queue whose DLQ takes messages after max_receive_count, visible 6x the function timeout or more', () => {
    for (const c of topology.consumers) {
      const [dlqId, dlq] = queueByName(dlqName(c));
      const [, queue] = queueByName(queueName(c));
      assert.equal(refId(queue.Properties.RedrivePolicy.deadLetterTargetArn), dlqId, c.name);
      assert.equal(queue.Properties.RedrivePolicy.maxReceiveCount, c.queue.max_receive_count, c.name);
      assert.ok(queue.Properties.VisibilityTimeout >= 6 * c.function.timeout_s, `${c.name} visibility`);
      assert.ok(queue.Properties.VisibilityTimeout >= c.queue.visibility_timeout_s, `${c.name} visibility`);
      assert.equal(dlq.Properties.MessageRetentionPeriod, 14 * 24 * 3600, c.name);
    }
  });

  it('has a Rust function named by its handler, sized and timed from the topology', () => {
    for (const c of topology.consumers) {
      const [, fn] = functionOf(c.name);
      assert.equal(fn.Properties.Runtime, 'provided.al2023');
      assert.equal(fn.Properties.Handler, 'bootstrap');
      assert.deepEqual(fn.Properties.Architectures, ['arm64']);
      assert.equal(fn.Properties.MemorySize, c.function.memory_mb);
      assert.equal(fn.Properties.Timeout, c.function.timeout_s);
      assert.match(fn.Properties.Description, new RegExp(`\\(${c.handler}\\)$`));
    }
  });

  it('is fed by its queue with partial batch responses, the batch size and batching window', () => {
    for (const c of topology.consumers) {
      const [fnId] = functionOf(c.name);
      const [queueId] = queueByName(queueName(c));
      const [, esm] = only(s, 'AWS::Lambda::EventSourceMapping', (p) => refId(p.EventSourceArn) === queueId);
      assert.equal(refId(esm.Properties.FunctionName), fnId);
      assert.deepEqual(esm.Properties.FunctionResponseTypes, ['ReportBatchItemFailures']);
      assert.equal(esm.Properties.BatchSize, c.queue.batch_size);
      assert.equal(esm.Properties.MaximumBatchingWindowInSeconds, c.queue.batching_window_ms / 1000);
    }
  });

  it('gets its config from the environment: table, bucket, every bus and topic, its name, JSON logs', () => {
    const buses = Object.fromEntries(
      resourcesOfType(s, 'AWS::Events::EventBus').map(([id, r]) => [r.Properties.Name, id]),
    );
    const topics = Object.fromEntries(
      resourcesOfType(s, 'AWS::SNS::Topic').map(([id, r]) => [r.Properties.TopicName, id]),
    );
    const [tableId] = resourcesOfType(s, 'AWS::DynamoDB::Table')[0];
    const [bucketId] = only(s, 'AWS::S3::Bucket', (p) => p.NotificationConfiguration !== undefined);
    const names = [...topology.consumers, ...topology.stream_consumers].map((c) => c.name).concat(topology.api.name);
    for (const name of names) {
      const env = functionOf(name)[1].Properties.Environment.Variables;
      assert.equal(refId(env.SWITCHYARD_TABLE), tableId, name);
      assert.equal(refId(env.SWITCHYARD_BUCKET), bucketId, name);
      assert.equal(env.SWITCHYARD_LOG_FORMAT, 'json', name);
      assert.equal(env.RUST_LOG, 'info', name);
      for (const b of topology.buses) assert.equal(refId(env[envName('SWITCHYARD_BUS_', b.name)]), buses[b.name], name);
      // A topic's Ref is its ARN, which is what SNS Publish takes.
      for (const t of topology.topics)
        assert.equal(refId(env[envName('SWITCHYARD_TOPIC_', t.name)]), topics[t.name], name);
    }
    assert.ok('SWITCHYARD_BUS_ORDERS' in functionOf(topology.consumers[0].name)[1].Properties.Environment.Variables);
    assert.ok('SWITCHYARD_TOPIC_IMAGES' in functionOf(topology.consumers[0].name)[1].Properties.Environment.Variables);
  });
});

describe('subscriptions', () => {
  it('each rule pattern is byte-for-byte the exported pattern, on its bus, targeting the queue and its DLQ', () => {
    // Parsed afresh from the file: nothing the stack did can have touched these objects.
    const exported = JSON.parse(exportedTopologyText()) as Topology;
    assert.ok(assertPatternsExact(s, exported) > 0);
    for (const c of exported.consumers) {
      for (const sub of c.subscriptions.filter(isBusSubscription)) {
        const [, rule] = only(s, 'AWS::Events::Rule', (p) => p.Name === sub.rule);
        assert.equal(refId(rule.Properties.Targets[0].DeadLetterConfig.Arn), queueByName(dlqName(c))[0]);
      }
    }
  });

  it('each SNS subscription is raw delivery with the exported filter policy, byte for byte', () => {
    const exported = JSON.parse(exportedTopologyText()) as Topology;
    assert.ok(assertFilterPoliciesExact(s, exported) > 0);
    const topicIds = exported.topics.map((t) => only(s, 'AWS::SNS::Topic', (p) => p.TopicName === t.name)[0]);
    const subscriptions = resourcesOfType(s, 'AWS::SNS::Subscription').filter(([, x]) =>
      topicIds.includes(refId(x.Properties.TopicArn)!),
    );
    assert.equal(
      subscriptions.length,
      exported.consumers.flatMap((c) => c.subscriptions).filter((x) => !isBusSubscription(x)).length,
    );
    for (const [, subscription] of subscriptions) {
      assert.equal(subscription.Properties.RawMessageDelivery, true);
      assert.equal(subscription.Properties.Protocol, 'sqs');
      const queueId = refId(subscription.Properties.Endpoint);
      const c = topology.consumers.find((x) => queueByName(queueName(x))[0] === queueId)!;
      assert.equal(refId(subscription.Properties.RedrivePolicy.deadLetterTargetArn), queueByName(dlqName(c))[0]);
    }
  });

  it('lets only its own rule or topic send to each queue', () => {
    for (const [, policy] of resourcesOfType(s, 'AWS::SQS::QueuePolicy')) {
      for (const st of asArray<any>(policy.Properties.PolicyDocument.Statement).filter((x) => x.Effect === 'Allow')) {
        assert.deepEqual(st.Action, 'sqs:SendMessage');
        assert.ok(st.Condition?.ArnEquals?.['aws:SourceArn'], `unconditioned send: ${JSON.stringify(st)}`);
      }
    }
  });
});

describe('the stream consumer', () => {
  it('reads the NEW_AND_OLD_IMAGES stream from the oldest record, bisecting, retrying, with an on-failure queue', () => {
    const [tableId, table] = resourcesOfType(s, 'AWS::DynamoDB::Table')[0];
    assert.equal(table.Properties.StreamSpecification.StreamViewType, 'NEW_AND_OLD_IMAGES');
    for (const sc of topology.stream_consumers) {
      const [fnId] = functionOf(sc.name);
      const [, esm] = only(s, 'AWS::Lambda::EventSourceMapping', (p) => refId(p.FunctionName) === fnId);
      assert.deepEqual(esm.Properties.EventSourceArn, { 'Fn::GetAtt': [tableId, 'StreamArn'] });
      assert.deepEqual(esm.Properties.FunctionResponseTypes, ['ReportBatchItemFailures']);
      assert.equal(esm.Properties.BisectBatchOnFunctionError, sc.bisect_batch_on_error);
      assert.equal(esm.Properties.MaximumRetryAttempts, sc.retry_attempts);
      assert.equal(esm.Properties.BatchSize, sc.batch_size);
      assert.equal(esm.Properties.StartingPosition, 'TRIM_HORIZON');
      const [failuresId] = queueByName(onFailureQueueName(sc));
      assert.equal(refId(esm.Properties.DestinationConfig.OnFailure.Destination), failuresId);
      assert.deepEqual(
        esm.Properties.FilterCriteria?.Filters?.map((f: { Pattern: string }) => JSON.parse(f.Pattern)),
        sc.filter_criteria.length ? sc.filter_criteria : undefined,
      );
    }
  });

  it('hands AWS the filter the local runtime applies: only orders and images reach the stream reactor', () => {
    const reactor = topology.stream_consumers.find((c) => c.handler === 'stream-reactor')!;
    const [fnId] = functionOf(reactor.name);
    const [, esm] = only(s, 'AWS::Lambda::EventSourceMapping', (p) => refId(p.FunctionName) === fnId);
    assert.deepEqual(esm.Properties.FilterCriteria, {
      Filters: [{ Pattern: JSON.stringify({ dynamodb: { NewImage: { type: { S: ['order', 'image'] } } } }) }],
    });
  });

  it('sets no FilterCriteria for a stream consumer without filter_criteria', () => {
    const t = exportedTopology();
    t.stream_consumers.forEach((c) => (c.filter_criteria = []));
    const unfiltered = synth(t);
    for (const [, esm] of resourcesOfType(unfiltered, 'AWS::Lambda::EventSourceMapping')) {
      assert.equal(esm.Properties.FilterCriteria, undefined);
    }
  });
});

describe('encryption and data protection', () => {
  it('encrypts every queue and every topic', () => {
    for (const [id, q] of resourcesOfType(s, 'AWS::SQS::Queue')) {
      assert.ok(q.Properties.SqsManagedSseEnabled === true || q.Properties.KmsMasterKeyId, `queue ${id}`);
    }
    const [keyId, key] = resourcesOfType(s, 'AWS::KMS::Key')[0];
    assert.equal(key.Properties.EnableKeyRotation, true);
    for (const [id, t] of resourcesOfType(s, 'AWS::SNS::Topic')) {
      assert.equal(refId(t.Properties.KmsMasterKeyId), keyId, `topic ${id}`);
    }
  });

  it('expires applied-event markers through the table TTL on their expires_at attribute', () => {
    s.template.hasResourceProperties('AWS::DynamoDB::Table', {
      TableName: topology.table.name,
      TimeToLiveSpecification: { AttributeName: 'expires_at', Enabled: true },
    });
    assert.equal(TTL_ATTRIBUTE, 'expires_at');
  });

  it('keeps the table on demand, with point-in-time recovery and encryption', () => {
    s.template.hasResourceProperties('AWS::DynamoDB::Table', {
      TableName: topology.table.name,
      BillingMode: 'PAY_PER_REQUEST',
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      SSESpecification: { SSEEnabled: true },
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
    });
  });

  it('blocks public access on every bucket, encrypts it and refuses plain HTTP', () => {
    const buckets = resourcesOfType(s, 'AWS::S3::Bucket');
    assert.equal(buckets.length, 2);
    for (const [id, b] of buckets) {
      assert.deepEqual(b.Properties.PublicAccessBlockConfiguration, {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      });
      assert.equal(
        b.Properties.BucketEncryption.ServerSideEncryptionConfiguration[0].ServerSideEncryptionByDefault.SSEAlgorithm,
        'AES256',
      );
      const [, policy] = only(s, 'AWS::S3::BucketPolicy', (p) => refId(p.Bucket) === id);
      assert.ok(
        asArray<any>(policy.Properties.PolicyDocument.Statement).some(
          (st) => st.Effect === 'Deny' && st.Condition?.Bool?.['aws:SecureTransport'] === 'false',
        ),
        `bucket ${id} enforces SSL`,
      );
    }
  });

  it('sends S3 Object Created events under the uploads prefix to EventBridge', () => {
    const [blobsId, blobs] = only(s, 'AWS::S3::Bucket', (p) => p.NotificationConfiguration !== undefined);
    assert.deepEqual(blobs.Properties.NotificationConfiguration, {
      EventBridgeConfiguration: { EventBridgeEnabled: true },
    });
    const [, rule] = only(s, 'AWS::Events::Rule', (p) => p.EventBusName === 'default');
    assert.deepEqual(rule.Properties.EventPattern, {
      source: ['aws.s3'],
      'detail-type': ['Object Created'],
      detail: { bucket: { name: [{ Ref: blobsId }] }, object: { key: [{ prefix: topology.bucket.uploads_prefix }] } },
    });
    const [busId] = only(s, 'AWS::Events::EventBus', (p) => p.Name === topology.buses[0].name);
    assert.equal(refId(rule.Properties.Targets[0].Arn), busId);
  });

  it('retains and encrypts every log group', () => {
    const groups = resourcesOfType(s, 'AWS::Logs::LogGroup');
    // One per function, and the API's access log.
    assert.equal(groups.length, topology.consumers.length + topology.stream_consumers.length + 2);
    const [keyId] = resourcesOfType(s, 'AWS::KMS::Key')[0];
    for (const [id, g] of groups) {
      assert.equal(g.Properties.RetentionInDays, 365, id);
      assert.equal(refId(g.Properties.KmsKeyId), keyId, id);
    }
    for (const [id, fn] of resourcesOfType(s, 'AWS::Lambda::Function')) {
      const group = refId(fn.Properties.LoggingConfig?.LogGroup);
      assert.ok(group && groups.some(([g]) => g === group), `function ${id} logs to a retained group`);
    }
  });
});

describe('alarms', () => {
  const alarmsOn = (queueId: string, metric: string) =>
    resourcesOfType(s, 'AWS::CloudWatch::Alarm').filter(
      ([, a]) => a.Properties.MetricName === metric && refId(a.Properties.Dimensions?.[0]?.Value) === queueId,
    );

  it('fires on the depth of every DLQ and on-failure queue', () => {
    const dlqs = [...topology.consumers.map(dlqName), ...topology.stream_consumers.map(onFailureQueueName)];
    for (const name of dlqs) {
      const [queueId] = queueByName(name);
      const alarms = alarmsOn(queueId, 'ApproximateNumberOfMessagesVisible');
      assert.equal(alarms.length, 1, name);
      assert.equal(alarms[0][1].Properties.Threshold, 1);
      assert.equal(alarms[0][1].Properties.ComparisonOperator, 'GreaterThanOrEqualToThreshold');
    }
  });

  it('fires on the age of the oldest message of every queue', () => {
    const names = [
      ...topology.consumers.flatMap((c) => [queueName(c), dlqName(c)]),
      ...topology.stream_consumers.map(onFailureQueueName),
    ];
    for (const name of names)
      assert.equal(alarmsOn(queueByName(name)[0], 'ApproximateAgeOfOldestMessage').length, 1, name);
  });

  const alarmsWith = (namespace: string, metric: string, dimension: string, value: (v: unknown) => boolean) =>
    resourcesOfType(s, 'AWS::CloudWatch::Alarm').filter(
      ([, a]) =>
        a.Properties.Namespace === namespace &&
        a.Properties.MetricName === metric &&
        asArray<any>(a.Properties.Dimensions).some((d) => d.Name === dimension && value(d.Value)),
    );

  it('fires on the errors and throttles of every function', () => {
    const names = [...topology.consumers, ...topology.stream_consumers].map((c) => c.name).concat(topology.api.name);
    for (const name of names) {
      const [fnId] = functionOf(name);
      for (const metric of ['Errors', 'Throttles']) {
        const alarms = alarmsWith('AWS/Lambda', metric, 'FunctionName', (v) => refId(v) === fnId);
        assert.equal(alarms.length, 1, `${name} ${metric}`);
        assert.equal(alarms[0][1].Properties.Statistic, 'Sum');
        assert.equal(alarms[0][1].Properties.Threshold, 1);
        assert.equal(alarms[0][1].Properties.ComparisonOperator, 'GreaterThanOrEqualToThreshold');
      }
    }
  });

  it('fires when a stream consumer falls behind the table stream', () => {
    for (const sc of topology.stream_consumers) {
      const [fnId] = functionOf(sc.name);
      const alarms = alarmsWith('AWS/Lambda', 'IteratorAge', 'FunctionName', (v) => refId(v) === fnId);
      assert.equal(alarms.length, 1, sc.name);
      assert.equal(alarms[0][1].Properties.Statistic, 'Maximum');
      // Milliseconds, well inside the stream's 24 h retention.
      assert.equal(alarms[0][1].Properties.Threshold, ITERATOR_AGE_ALARM.toMilliseconds());
      assert.ok(alarms[0][1].Properties.Threshold < 24 * 3600 * 1000);
    }
  });

  it('fires on any 5xx answer of the HTTP API', () => {
    const [apiId] = resourcesOfType(s, 'AWS::ApiGatewayV2::Api')[0];
    const alarms = alarmsWith('AWS/ApiGateway', '5xx', 'ApiId', (v) => refId(v) === apiId);
    assert.equal(alarms.length, 1);
    assert.equal(alarms[0][1].Properties.Statistic, 'Sum');
    assert.equal(alarms[0][1].Properties.Threshold, 1);
  });

  it('fires on read and write throttling of the table', () => {
    const [tableId] = resourcesOfType(s, 'AWS::DynamoDB::Table')[0];
    for (const metric of ['ReadThrottleEvents', 'WriteThrottleEvents']) {
      const alarms = alarmsWith('AWS/DynamoDB', metric, 'TableName', (v) => refId(v) === tableId);
      assert.equal(alarms.length, 1, metric);
      assert.equal(alarms[0][1].Properties.Threshold, 1);
    }
  });

  it('sends the alarm topic to a recipient the deployer must name', () => {
    const [alarmTopicId] = only(s, 'AWS::SNS::Topic', (p) => p.TopicName === undefined);
    const param = (s.json as any).Parameters.AlarmEmail;
    assert.equal(param.Type, 'String');
    // No default: CloudFormation refuses a deploy that does not give one.
    assert.equal(param.Default, undefined);
    const [, sub] = only(s, 'AWS::SNS::Subscription', (p) => refId(p.TopicArn) === alarmTopicId);
    assert.equal(sub.Properties.Protocol, 'email');
    assert.deepEqual(sub.Properties.Endpoint, { Ref: 'AlarmEmail' });
    const pattern = new RegExp(param.AllowedPattern);
    assert.ok(pattern.test('ops@example.com'));
    assert.ok(!pattern.test('not an address'));
    // `-c alarmEmail=...` becomes the parameter's default.
    const given = synth(exportedTopology(), { alarmEmail: 'ops@example.com' });
    assert.equal((given.json as any).Parameters.AlarmEmail.Default, 'ops@example.com');
  });

  it('notifies the encrypted alarm topic, which CloudWatch may publish to', () => {
    const [alarmTopicId] = only(s, 'AWS::SNS::Topic', (p) => p.TopicName === undefined);
    for (const [id, a] of resourcesOfType(s, 'AWS::CloudWatch::Alarm')) {
      assert.deepEqual(a.Properties.AlarmActions.map(refId), [alarmTopicId], id);
    }
    const [, policy] = only(s, 'AWS::SNS::TopicPolicy', (p) =>
      asArray<any>(p.Topics).some((t) => refId(t) === alarmTopicId),
    );
    assert.ok(
      asArray<any>(policy.Properties.PolicyDocument.Statement).some(
        (st) =>
          st.Effect === 'Allow' && st.Principal?.Service === 'cloudwatch.amazonaws.com' && st.Action === 'sns:Publish',
      ),
    );
  });
});

describe('least privilege', () => {
  it('lets CloudWatch use the key only for alarms of this account', () => {
    const [, key] = resourcesOfType(s, 'AWS::KMS::Key')[0];
    const st = asArray<any>(key.Properties.KeyPolicy.Statement).find(
      (x) => x.Principal?.Service === 'cloudwatch.amazonaws.com',
    );
    assert.ok(st, 'a CloudWatch statement');
    assert.deepEqual(st.Condition.StringEquals, { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } });
    assert.ok(st.Condition.ArnLike['aws:SourceArn'], 'alarms only');
    // Every service principal in the key policy is conditioned.
    for (const x of asArray<any>(key.Properties.KeyPolicy.Statement).filter((y) => y.Principal?.Service)) {
      assert.ok(x.Condition, `${x.Sid} has no condition`);
    }
  });

  it('gives the orders API read-only table access: it writes only its Idempotency-Key records', () => {
    assert.equal(topology.api.permissions.table, 'read');
    const [, fn] = functionOf(topology.api.name);
    const statements = policyOfRole(refId(fn.Properties.Role)!);
    const unconditioned = statements.filter((st) => !st.Condition);
    const dynamo = actionsOf(unconditioned).filter((a) => a.startsWith('dynamodb:'));
    assert.deepEqual(dynamo.sort(), [...TABLE_READ].sort());
    for (const write of TABLE_WRITE) assert.ok(!dynamo.includes(write), write);
    // Its writes are held to the idempotency records' partition keys.
    const records = statements.filter((st) => st.Sid === 'IdempotencyRecords');
    assert.equal(records.length, 1);
    assert.deepEqual(asArray<string>(records[0].Action).sort(), [...IDEMPOTENCY_WRITE].sort());
    assert.deepEqual(records[0].Condition, {
      'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': [IDEMPOTENCY_KEYS] },
    });
    for (const st of statements.filter((x) => x.Sid !== 'IdempotencyRecords'))
      for (const a of asArray<string>(st.Action)) assert.ok(!TABLE_WRITE.includes(a), `${st.Sid}: ${a}`);
    // It still stores uploads and publishes its commands.
    assert.ok(actionsOf(statements).includes('s3:PutObject'));
    assert.ok(actionsOf(statements).includes('events:PutEvents'));
    assert.ok(actionsOf(statements).includes('sns:Publish'));
  });

  it('grants Scan, BatchGetItem or DescribeTable to no function: none calls them', () => {
    const actions = allStatements(s).flatMap(({ statement }) => asArray<string>(statement.Action));
    for (const a of ['dynamodb:Scan', 'dynamodb:BatchGetItem', 'dynamodb:BatchWriteItem', 'dynamodb:DescribeTable'])
      assert.ok(!actions.includes(a), a);
  });

  it('has no Allow statement with a wildcard action anywhere: IAM, queue, topic, bucket or key policies', () => {
    const statements = allStatements(s);
    assert.ok(statements.length > 20);
    for (const { owner, statement } of statements.filter((x) => x.statement.Effect === 'Allow')) {
      for (const action of asArray<string>(statement.Action)) {
        assert.ok(!action.includes('*'), `${owner} allows ${action}`);
      }
      assert.equal(statement.NotAction, undefined, `${owner} uses NotAction`);
    }
  });

  it('scopes every IAM policy statement to named resources', () => {
    for (const [id, p] of resourcesOfType(s, 'AWS::IAM::Policy')) {
      for (const st of asArray<any>(p.Properties.PolicyDocument.Statement)) {
        for (const r of asArray<any>(st.Resource)) assert.notEqual(r, '*', `${id}: ${JSON.stringify(st.Action)} on *`);
      }
    }
  });

  it('gives each function a role of its own, with no managed policy', () => {
    const roles = new Set<string>();
    for (const [id, fn] of resourcesOfType(s, 'AWS::Lambda::Function')) {
      const role = refId(fn.Properties.Role)!;
      assert.ok(!roles.has(role), `${id} shares a role`);
      roles.add(role);
      assert.equal(s.json.Resources[role].Properties.ManagedPolicyArns, undefined, `${id} has managed policies`);
    }
  });

  it('grants each function exactly the table, blob, queue and publish access its topology entry declares', () => {
    const entries = [
      ...topology.consumers.map((c) => ({ name: c.name, perms: c.permissions })),
      ...topology.stream_consumers.map((c) => ({ name: c.name, perms: c.permissions })),
      { name: topology.api.name, perms: topology.api.permissions },
    ];
    for (const { name, perms } of entries) {
      const [, fn] = functionOf(name);
      const statements = policyOfRole(refId(fn.Properties.Role)!);
      const actions = actionsOf(statements);
      const has = (a: string) => actions.includes(a);
      // The API's Idempotency-Key records are the one conditioned write (tested above).
      const tableWrites = actionsOf(statements.filter((st) => st.Sid !== 'IdempotencyRecords'));
      assert.equal(has('dynamodb:GetItem'), perms.table !== undefined, `${name} table read`);
      assert.equal(tableWrites.includes('dynamodb:PutItem'), perms.table === 'read-write', `${name} table write`);
      assert.equal(has('s3:GetObject'), (perms.blobs?.read.length ?? 0) > 0, `${name} blob read`);
      assert.equal(has('s3:PutObject'), (perms.blobs?.write.length ?? 0) > 0, `${name} blob write`);
      assert.equal(
        has('events:PutEvents'),
        perms.publish.some((p) => p.bus),
        `${name} bus publish`,
      );
      assert.equal(
        has('sns:Publish'),
        perms.publish.some((p) => p.topic),
        `${name} topic publish`,
      );
      assert.equal(
        has('kms:GenerateDataKey'),
        perms.publish.some((p) => p.topic),
        `${name} topic key`,
      );
      const objectArns = (action: string) =>
        statements
          .filter((st) => asArray(st.Action).includes(action))
          .flatMap((st) => asArray<any>(st.Resource))
          .map((r) => r['Fn::Join'][1][1]);
      assert.deepEqual(
        objectArns('s3:GetObject'),
        (perms.blobs?.read ?? []).map((p) => `/${p}*`),
        `${name} read prefixes`,
      );
      assert.deepEqual(
        objectArns('s3:PutObject'),
        (perms.blobs?.write ?? []).map((p) => `/${p}*`),
        `${name} write prefixes`,
      );
    }
  });

  it('lets a consumer receive from its own queue only', () => {
    for (const c of topology.consumers) {
      const [, fn] = functionOf(c.name);
      const receive = policyOfRole(refId(fn.Properties.Role)!).filter((st) =>
        asArray(st.Action).includes('sqs:ReceiveMessage'),
      );
      assert.deepEqual(
        receive.flatMap((st) => asArray(st.Resource)).map(refId),
        [queueByName(queueName(c))[0]],
        c.name,
      );
    }
  });

  it('lets the stream consumer read only the table stream, and send only to its on-failure queue', () => {
    for (const sc of topology.stream_consumers) {
      const [, fn] = functionOf(sc.name);
      const statements = policyOfRole(refId(fn.Properties.Role)!);
      const [tableId] = resourcesOfType(s, 'AWS::DynamoDB::Table')[0];
      const getRecords = statements.find((st) => asArray(st.Action).includes('dynamodb:GetRecords'))!;
      assert.deepEqual(getRecords.Resource, { 'Fn::GetAtt': [tableId, 'StreamArn'] });
      const send = statements.filter((st) => asArray(st.Action).includes('sqs:SendMessage'));
      assert.deepEqual(send.flatMap((st) => asArray(st.Resource)).map(refId), [queueByName(onFailureQueueName(sc))[0]]);
    }
  });
});

describe('the HTTP API', () => {
  it('routes everything to the API function, signed with IAM by default, with throttling and access logs', () => {
    const [apiFnId] = functionOf(topology.api.name);
    s.template.hasResourceProperties('AWS::ApiGatewayV2::Api', { ProtocolType: 'HTTP', Name: topology.api.name });
    s.template.hasResourceProperties('AWS::ApiGatewayV2::Integration', {
      IntegrationType: 'AWS_PROXY',
      IntegrationUri: { 'Fn::GetAtt': [apiFnId, 'Arn'] },
    });
    s.template.hasResourceProperties('AWS::ApiGatewayV2::Route', {
      RouteKey: '$default',
      AuthorizationType: 'AWS_IAM',
    });
    s.template.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
      StageName: '$default',
      AutoDeploy: true,
      DefaultRouteSettings: { ThrottlingRateLimit: Match.anyValue(), ThrottlingBurstLimit: Match.anyValue() },
      AccessLogSettings: { DestinationArn: Match.anyValue(), Format: Match.anyValue() },
    });
    assert.deepEqual(Object.keys(s.json.Outputs).filter((k) => k.startsWith('ApiUrl')).length, 1);
  });
});

describe('outputs', () => {
  it('name the API URL, every bus and topic ARN, the table, bucket and alarm topic', () => {
    const keys = Object.keys(s.json.Outputs);
    for (const prefix of ['ApiUrl', 'TableName', 'BucketName', 'AlarmTopicArn']) {
      assert.ok(
        keys.some((k) => k.startsWith(prefix)),
        prefix,
      );
    }
    for (const b of topology.buses) {
      const [busId] = only(s, 'AWS::Events::EventBus', (p) => p.Name === b.name);
      assert.deepEqual(s.json.Outputs[`${pascal(b.name)}BusArn`].Value, { 'Fn::GetAtt': [busId, 'Arn'] });
    }
    for (const t of topology.topics) {
      const [topicId] = only(s, 'AWS::SNS::Topic', (p) => p.TopicName === t.name);
      assert.deepEqual(s.json.Outputs[`${pascal(t.name)}TopicArn`].Value, { Ref: topicId });
    }
    assert.equal(pascal('orders-v2.fifo'), 'OrdersV2Fifo');
  });
});

describe('checkov skips', () => {
  it('carry a justification wherever they are used', () => {
    let skips = 0;
    for (const [id, r] of Object.entries(s.json.Resources)) {
      for (const skip of asArray<any>(r.Metadata?.checkov?.skip)) {
        assert.match(skip.id, /^CKV2?_AWS_\d+$/, id);
        assert.ok(typeof skip.comment === 'string' && skip.comment.length > 40, `${id} ${skip.id} lacks a reason`);
        skips++;
      }
    }
    assert.ok(skips > 0);
  });
});
