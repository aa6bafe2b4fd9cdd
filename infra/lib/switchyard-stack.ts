// The whole Switchyard topology on AWS, generated from the topology JSON:
// nothing here names a consumer, so a new topology entry is a new set of
// resources with no code change.
import * as path from 'node:path';
import * as cdk from 'aws-cdk-lib';
import * as apigw from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpIamAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { SqsDlq, SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { RustFunction } from 'cargo-lambda-cdk';
import { Construct, IDependable } from 'constructs';
import {
  BusSubscription,
  ConsumerSpec,
  FunctionSpec,
  Permissions,
  StreamConsumerSpec,
  TopicSubscription,
  Topology,
  TopologyError,
  dlqName,
  envName,
  isBusSubscription,
  onFailureQueueName,
  queueName,
  topicResourceName,
} from './topology';

export type ApiAuth = 'iam' | 'none';

export interface SwitchyardStackProps extends cdk.StackProps {
  readonly topology: Topology;
  /** Repository root, where `consumers/` and `producer/` hold the Lambda binaries. */
  readonly repoRoot: string;
  readonly architecture: lambda.Architecture;
  readonly logRetention: logs.RetentionDays;
  /** S3 names are global: the default adds the account and region to the topology's name. */
  readonly bucketName?: string;
  /** The bus that S3 `Object Created` events under the uploads prefix are forwarded to. */
  readonly uploadsBus?: string;
  readonly apiAuth: ApiAuth;
  /**
   * Default of the required `AlarmEmail` stack parameter, the alarm topic's
   * recipient. Without one, `cdk deploy` needs `--parameters AlarmEmail=...`.
   */
  readonly alarmEmail?: string;
  readonly rustLog: string;
}

/** A checkov skip with the reason it does not apply, rendered into the resource's metadata. */
export interface CheckovSkip {
  readonly id: string;
  readonly comment: string;
}

export function skipCheckov(construct: Construct, ...skips: CheckovSkip[]): void {
  const resource = (construct.node.defaultChild ?? construct) as cdk.CfnResource;
  const existing = (resource.getMetadata('checkov') as { skip: CheckovSkip[] } | undefined)?.skip ?? [];
  resource.addMetadata('checkov', { skip: [...existing, ...skips] });
}

const LAMBDA_SKIPS: CheckovSkip[] = [
  {
    id: 'CKV_AWS_115',
    comment:
      'Concurrency is bounded by each event source (SQS pollers, one batch per stream shard, API throttling); ' +
      'a reservation would carve capacity out of the shared account pool.',
  },
  {
    id: 'CKV_AWS_116',
    comment:
      'A function DLQ only catches asynchronous invocations; these functions are invoked synchronously by event ' +
      'source mappings and API Gateway, and failed records go to the source queue DLQ or the stream on-failure queue.',
  },
  {
    id: 'CKV_AWS_117',
    comment:
      'The functions reach only AWS public service endpoints; there is no private resource to reach through a VPC.',
  },
  {
    id: 'CKV_AWS_173',
    comment:
      'The variables hold resource names and ARNs, no secrets; Lambda encrypts them at rest with its service key.',
  },
];

// Table actions by access level, exactly what the Lambda table adapter
// (shared/src/aws/table.rs) calls; no wildcards, so a new DynamoDB action is
// never granted by accident. No function scans (only `switchyard state dump`,
// an operator's command), so no role gets `Scan`. Transactions
// (TransactWriteItems) are authorised item by item: put, delete and the
// condition checks.
export const TABLE_READ = ['dynamodb:GetItem', 'dynamodb:Query'];
/** The orders API's only writes: its Idempotency-Key records (producer/src/idempotency.rs). */
export const IDEMPOTENCY_WRITE = ['dynamodb:PutItem', 'dynamodb:DeleteItem'];
/** The partition keys those records live under: the API can write nothing else. */
export const IDEMPOTENCY_KEYS = 'IDEMPOTENCY#*';
export const TABLE_WRITE = [
  'dynamodb:ConditionCheckItem',
  'dynamodb:DeleteItem',
  'dynamodb:PutItem',
  'dynamodb:UpdateItem',
];

/** The table's TTL attribute, epoch seconds: only applied-event markers carry it (shared/src/items.rs). */
export const TTL_ATTRIBUTE = 'expires_at';

/** Where an alarm fires, in one place so the tests and DEPLOY.md can name them. */
export const ALARM_PERIOD = cdk.Duration.minutes(5);
/** A stream consumer this far behind is stuck on a batch or short of concurrency; the stream keeps 24 h. */
export const ITERATOR_AGE_ALARM = cdk.Duration.minutes(10);

/** `orders-v2` -> `OrdersV2`, for output names. */
export function pascal(name: string): string {
  return name
    .split(/[^A-Za-z0-9]+/)
    .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
    .join('');
}

export class SwitchyardStack extends cdk.Stack {
  readonly table: dynamodb.Table;
  readonly bucket: s3.Bucket;
  readonly key: kms.Key;
  readonly alarmTopic: sns.Topic;
  readonly buses = new Map<string, events.EventBus>();
  readonly topics = new Map<string, sns.Topic>();
  /** Every function by its topology name (consumers, stream consumers, the API). */
  readonly functions = new Map<string, lambda.Function>();
  /** Where each function's code is built from: a Cargo manifest and one of its binaries. */
  readonly builds = new Map<string, { manifestPath: string; binary: string }>();

  private readonly props: SwitchyardStackProps;
  private readonly functionEnv: Record<string, string>;

  constructor(scope: Construct, id: string, props: SwitchyardStackProps) {
    super(scope, id, props);
    this.props = props;
    const t = props.topology;

    this.key = this.createKey();
    this.alarmTopic = this.createAlarmTopic();
    this.table = this.createTable();
    this.bucket = this.createBucket();

    for (const bus of t.buses) {
      const eventBus = new events.EventBus(this, `Bus-${bus.name}`, { eventBusName: bus.name });
      this.buses.set(bus.name, eventBus);
      new cdk.CfnOutput(this, `${pascal(bus.name)}BusArn`, {
        value: eventBus.eventBusArn,
        description: `ARN of the ${bus.name} bus`,
      });
    }
    for (const topic of t.topics) {
      const snsTopic = new sns.Topic(this, `Topic-${topic.name}`, {
        topicName: topicResourceName(topic),
        fifo: topic.fifo || undefined,
        masterKey: this.key,
        enforceSSL: true,
      });
      this.topics.set(topic.name, snsTopic);
      new cdk.CfnOutput(this, `${pascal(topic.name)}TopicArn`, {
        value: snsTopic.topicArn,
        description: `ARN of the ${topic.name} topic`,
      });
    }

    this.functionEnv = this.functionEnvironment();
    this.forwardUploads();
    t.consumers.forEach((c) => this.addConsumer(c));
    t.stream_consumers.forEach((s) => this.addStreamConsumer(s));
    this.addApi();

    new cdk.CfnOutput(this, 'TableName', { value: this.table.tableName });
    new cdk.CfnOutput(this, 'BucketName', { value: this.bucket.bucketName });
    new cdk.CfnOutput(this, 'AlarmTopicArn', {
      value: this.alarmTopic.topicArn,
      description: 'The topic every alarm notifies (AlarmEmail is subscribed)',
    });
  }

  // One customer managed key for the topics and the log groups, with rotation.
  // Its policy lists actions one by one: the usual root `kms:*` would be the
  // one wildcard action in the stack.
  private createKey(): kms.Key {
    const account = new iam.AccountRootPrincipal();
    const policy = new iam.PolicyDocument({
      statements: [
        new iam.PolicyStatement({
          sid: 'KeyAdministrationThroughIam',
          principals: [account],
          actions: [
            'kms:CancelKeyDeletion',
            'kms:CreateAlias',
            'kms:CreateGrant',
            'kms:DeleteAlias',
            'kms:DescribeKey',
            'kms:DisableKey',
            'kms:DisableKeyRotation',
            'kms:EnableKey',
            'kms:EnableKeyRotation',
            'kms:GetKeyPolicy',
            'kms:GetKeyRotationStatus',
            'kms:ListGrants',
            'kms:ListKeyPolicies',
            'kms:ListKeyRotations',
            'kms:ListResourceTags',
            'kms:PutKeyPolicy',
            'kms:RevokeGrant',
            'kms:RotateKeyOnDemand',
            'kms:ScheduleKeyDeletion',
            'kms:TagResource',
            'kms:UntagResource',
            'kms:UpdateAlias',
            'kms:UpdateKeyDescription',
          ],
          resources: ['*'],
        }),
        // Publishers get kms:GenerateDataKey/Decrypt from their IAM role, and only through SNS.
        new iam.PolicyStatement({
          sid: 'UseThroughSnsWithIam',
          principals: [account],
          actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
          resources: ['*'],
          conditions: { StringEquals: { 'kms:ViaService': `sns.${this.region}.amazonaws.com` } },
        }),
        // CloudWatch alarms publish to the encrypted alarm topic: this
        // account's alarms only, so no other account's alarm uses the key.
        new iam.PolicyStatement({
          sid: 'CloudWatchAlarmsPublish',
          principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
          actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
          resources: ['*'],
          conditions: this.alarmSourceConditions(),
        }),
        // CloudWatch Logs encrypts this account's log groups, and no one else's.
        new iam.PolicyStatement({
          sid: 'CloudWatchLogsEncrypt',
          principals: [new iam.ServicePrincipal(`logs.${this.region}.amazonaws.com`)],
          actions: [
            'kms:Decrypt',
            'kms:DescribeKey',
            'kms:Encrypt',
            'kms:GenerateDataKey',
            'kms:ReEncryptFrom',
            'kms:ReEncryptTo',
          ],
          resources: ['*'],
          conditions: {
            ArnLike: {
              'kms:EncryptionContext:aws:logs:arn': `arn:${this.partition}:logs:${this.region}:${this.account}:log-group:*`,
            },
          },
        }),
      ],
    });
    return new kms.Key(this, 'Key', {
      description: 'Switchyard: SNS topics and CloudWatch log groups',
      enableKeyRotation: true,
      policy,
      removalPolicy: cdk.RemovalPolicy.RETAIN,
    });
  }

  /** Confused-deputy guard for the CloudWatch service principal: alarms of this account and region. */
  private alarmSourceConditions(): Record<string, unknown> {
    return {
      StringEquals: { 'aws:SourceAccount': this.account },
      ArnLike: { 'aws:SourceArn': `arn:${this.partition}:cloudwatch:${this.region}:${this.account}:alarm:*` },
    };
  }

  private createAlarmTopic(): sns.Topic {
    const topic = new sns.Topic(this, 'AlarmTopic', { masterKey: this.key, enforceSSL: true });
    // The SSL-only topic policy replaces SNS's default one, so CloudWatch needs its own grant.
    topic.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'CloudWatchAlarmsPublish',
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['sns:Publish'],
        resources: [topic.topicArn],
        conditions: this.alarmSourceConditions(),
      }),
    );
    // An alarm nobody hears is no alarm: the recipient is a required
    // parameter (its default comes from `-c alarmEmail`, if given).
    const email = new cdk.CfnParameter(this, 'AlarmEmail', {
      type: 'String',
      description: 'The address the alarm topic notifies (it must confirm the subscription)',
      allowedPattern: '^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$',
      constraintDescription: 'an email address',
      default: this.props.alarmEmail,
    });
    new sns.Subscription(this, 'AlarmEmailSubscription', {
      topic,
      protocol: sns.SubscriptionProtocol.EMAIL,
      endpoint: email.valueAsString,
    });
    return topic;
  }

  private createTable(): dynamodb.Table {
    const table = new dynamodb.Table(this, 'Table', {
      tableName: this.props.topology.table.name,
      partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'sk', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      stream: dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      deletionProtection: true,
      removalPolicy: cdk.RemovalPolicy.RETAIN,
      // Applied-event markers expire once no copy of their event can still arrive.
      timeToLiveAttribute: TTL_ATTRIBUTE,
    });
    // Throttled requests are retried by the SDK, but sustained ones fail deliveries.
    for (const metric of ['ReadThrottleEvents', 'WriteThrottleEvents']) {
      this.alarm(
        `Table${metric}`,
        table.metric(metric, { period: ALARM_PERIOD, statistic: 'Sum' }),
        1,
        `${this.props.topology.table.name}: ${metric}`,
      );
    }
    skipCheckov(table, {
      id: 'CKV_AWS_119',
      comment:
        'Encrypted at rest with the AWS managed key (aws/dynamodb); a customer managed key would put every read, ' +
        'write and stream poll of every function behind KMS grants and request quotas.',
    });
    return table;
  }

  private createBucket(): s3.Bucket {
    const t = this.props.topology;
    const common: s3.BucketProps = {
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      enforceSSL: true,
      versioned: true,
      removalPolicy: cdk.RemovalPolicy.RETAIN,
    };
    const accessLogs = new s3.Bucket(this, 'AccessLogs', {
      ...common,
      lifecycleRules: [{ expiration: cdk.Duration.days(365), noncurrentVersionExpiration: cdk.Duration.days(30) }],
    });
    skipCheckov(accessLogs, {
      id: 'CKV_AWS_18',
      comment: 'This is the access log bucket itself; logging it into itself would log its own log writes.',
    });
    const bucket = new s3.Bucket(this, 'Blobs', {
      ...common,
      bucketName: this.props.bucketName ?? `${t.bucket.name}-${this.account}-${this.region}`,
      serverAccessLogsBucket: accessLogs,
      serverAccessLogsPrefix: 'blobs/',
      lifecycleRules: [
        {
          abortIncompleteMultipartUploadAfter: cdk.Duration.days(7),
          noncurrentVersionExpiration: cdk.Duration.days(30),
        },
      ],
    });
    // Set on the L1 bucket: the L2 `eventBridgeEnabled` adds a custom resource
    // whose role may put notifications on any bucket.
    (bucket.node.defaultChild as s3.CfnBucket).notificationConfiguration = {
      eventBridgeConfiguration: { eventBridgeEnabled: true },
    };
    return bucket;
  }

  // S3 sends every bucket event to the account's default bus; this rule picks
  // `Object Created` under the uploads prefix and forwards it to a Switchyard bus.
  private forwardUploads(): void {
    const t = this.props.topology;
    const busName = this.props.uploadsBus ?? t.buses[0]?.name;
    if (busName === undefined) return;
    const bus = this.buses.get(busName);
    if (!bus) throw new TopologyError(`uploadsBus: no bus named ${JSON.stringify(busName)}`);
    const role = new iam.Role(this, 'UploadsForwardRole', {
      assumedBy: new iam.ServicePrincipal('events.amazonaws.com'),
      description: `Lets EventBridge forward S3 uploads to the ${busName} bus`,
    });
    role.addToPolicy(new iam.PolicyStatement({ actions: ['events:PutEvents'], resources: [bus.eventBusArn] }));
    new events.CfnRule(this, 'UploadsObjectCreated', {
      description: `S3 Object Created under ${t.bucket.uploads_prefix} to the ${busName} bus`,
      eventBusName: 'default',
      eventPattern: {
        source: ['aws.s3'],
        'detail-type': ['Object Created'],
        detail: {
          bucket: { name: [this.bucket.bucketName] },
          object: { key: [{ prefix: t.bucket.uploads_prefix }] },
        },
      },
      targets: [{ id: 'bus', arn: bus.eventBusArn, roleArn: role.roleArn }],
    });
  }

  private functionEnvironment(): Record<string, string> {
    const env: Record<string, string> = {
      SWITCHYARD_TABLE: this.table.tableName,
      SWITCHYARD_BUCKET: this.bucket.bucketName,
      SWITCHYARD_LOG_FORMAT: 'json',
      RUST_LOG: this.props.rustLog,
    };
    this.buses.forEach((bus, name) => (env[envName('SWITCHYARD_BUS_', name)] = bus.eventBusName));
    this.topics.forEach((topic, name) => (env[envName('SWITCHYARD_TOPIC_', name)] = topic.topicArn));
    return env;
  }

  private logGroup(id: string): logs.LogGroup {
    return new logs.LogGroup(this, id, {
      retention: this.props.logRetention,
      encryptionKey: this.key,
      removalPolicy: cdk.RemovalPolicy.RETAIN,
    });
  }

  /** A function with its own role, log group and the grants its topology entry declares. */
  private rustFunction(
    id: string,
    name: string,
    crate: string,
    binary: string,
    spec: FunctionSpec,
    perms: Permissions,
  ): lambda.Function {
    const logGroup = this.logGroup(`${id}Logs`);
    const role = new iam.Role(this, `${id}Role`, {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `Switchyard ${name}: only what its topology entry declares`,
    });
    // Instead of AWSLambdaBasicExecutionRole, which writes to any log group.
    role.addToPolicy(
      new iam.PolicyStatement({
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [logGroup.logGroupArn],
      }),
    );
    this.grant(role, perms);
    // The topology entry may name the package and binary (a consumer from a user's crate).
    const build = {
      manifestPath: path.join(this.props.repoRoot, spec.package ?? crate, 'Cargo.toml'),
      binary: spec.binary ?? binary,
    };
    this.builds.set(name, build);
    const fn = new RustFunction(this, `${id}Function`, {
      description: `Switchyard ${name} (${build.binary})`,
      manifestPath: build.manifestPath,
      binaryName: build.binary,
      // The Cargo profile tuned for Lambda (stripped, thin LTO; see BENCHMARKS.md "Lambda").
      bundling: { architecture: this.props.architecture, profile: 'lambda' },
      architecture: this.props.architecture,
      memorySize: spec.memory_mb,
      timeout: cdk.Duration.seconds(spec.timeout_s),
      role,
      logGroup,
      environment: { ...this.functionEnv, SWITCHYARD_CONSUMER: name },
    });
    skipCheckov(fn, ...LAMBDA_SKIPS);
    // Errors: a crash or timeout (a failed item is a partial batch response, not an error).
    this.alarm(`${id}Errors`, fn.metricErrors({ period: ALARM_PERIOD, statistic: 'Sum' }), 1, `${name} errors`);
    this.alarm(
      `${id}Throttles`,
      fn.metricThrottles({ period: ALARM_PERIOD, statistic: 'Sum' }),
      1,
      `${name} is throttled`,
    );
    this.functions.set(name, fn);
    return fn;
  }

  private grant(role: iam.Role, perms: Permissions): void {
    const allow = (sid: string, actions: string[], resources: string[], conditions?: Record<string, unknown>) =>
      role.addToPolicy(new iam.PolicyStatement({ sid, actions, resources, conditions }));
    if (perms.table) {
      allow('Table', perms.table === 'read-write' ? [...TABLE_READ, ...TABLE_WRITE] : TABLE_READ, [
        this.table.tableArn,
      ]);
    }
    const objects = (prefix: string) => this.bucket.arnForObjects(`${prefix}*`);
    const read = perms.blobs?.read ?? [];
    const write = perms.blobs?.write ?? [];
    if (read.length > 0) {
      allow('BlobsRead', ['s3:GetObject'], read.map(objects));
      // Listing (and telling a missing key from a forbidden one) only under the readable prefixes.
      allow('BlobsList', ['s3:ListBucket'], [this.bucket.bucketArn], {
        StringLike: { 's3:prefix': read.map((p) => `${p}*`) },
      });
    }
    if (write.length > 0) allow('BlobsWrite', ['s3:AbortMultipartUpload', 's3:PutObject'], write.map(objects));
    const buses = perms.publish.flatMap((r) => (r.bus ? [this.buses.get(r.bus)!.eventBusArn] : []));
    const topics = perms.publish.flatMap((r) => (r.topic ? [this.topics.get(r.topic)!.topicArn] : []));
    if (buses.length > 0) allow('PublishBus', ['events:PutEvents'], buses);
    if (topics.length > 0) {
      allow('PublishTopic', ['sns:Publish'], topics);
      allow('PublishTopicKey', ['kms:Decrypt', 'kms:GenerateDataKey'], [this.key.keyArn], {
        StringEquals: { 'kms:ViaService': `sns.${this.region}.amazonaws.com` },
      });
    }
  }

  // SSE-SQS rather than a KMS key: SNS and EventBridge deliver to it with no
  // key policy to get wrong, and consumers need no kms:Decrypt.
  private queue(id: string, props: sqs.QueueProps): sqs.Queue {
    const queue = new sqs.Queue(this, id, {
      ...props,
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      contentBasedDeduplication: props.fifo ? true : undefined,
    });
    skipCheckov(queue, {
      id: 'CKV_AWS_27',
      comment: 'Encrypted at rest with SSE-SQS (SqsManagedSseEnabled); the check only recognises KmsMasterKeyId.',
    });
    return queue;
  }

  private alarm(id: string, metric: cloudwatch.IMetric, threshold: number, description: string): void {
    const alarm = new cloudwatch.Alarm(this, id, {
      metric,
      threshold,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      alarmDescription: description,
    });
    alarm.addAlarmAction(new cwActions.SnsAction(this.alarmTopic));
  }

  /** A dead-letter queue: kept 14 days, alarmed on any message and before messages expire. */
  private deadLetterQueue(id: string, queueName: string, fifo: boolean | undefined): sqs.Queue {
    const dlq = this.queue(id, { queueName, fifo: fifo || undefined, retentionPeriod: cdk.Duration.days(14) });
    const period = ALARM_PERIOD;
    this.alarm(
      `${id}Depth`,
      dlq.metricApproximateNumberOfMessagesVisible({ period, statistic: 'Maximum' }),
      1,
      `${queueName} holds messages that failed`,
    );
    this.alarm(
      `${id}Age`,
      dlq.metricApproximateAgeOfOldestMessage({ period, statistic: 'Maximum' }),
      cdk.Duration.days(10).toSeconds(),
      `${queueName} has messages 4 days away from expiring`,
    );
    return dlq;
  }

  private addConsumer(c: ConsumerSpec): void {
    const id = `Consumer-${c.name}`;
    const fifo = c.queue.fifo;
    if (c.queue.batching_window_ms % 1000 !== 0) {
      throw new TopologyError(
        `consumer ${c.name}: queue.batching_window_ms ${c.queue.batching_window_ms} is not whole seconds, which is all Lambda takes`,
      );
    }
    if (fifo && c.queue.batching_window_ms > 0) {
      throw new TopologyError(
        `consumer ${c.name}: Lambda takes no batching window on FIFO queues; set queue.batching_window_ms to 0`,
      );
    }
    if (c.queue.batch_size > 10 && c.queue.batching_window_ms === 0) {
      throw new TopologyError(`consumer ${c.name}: Lambda needs queue.batching_window_ms > 0 for batches over 10`);
    }
    // AWS's advice for SQS event sources; the topology's value wins when larger.
    const visibility = Math.max(c.queue.visibility_timeout_s, 6 * c.function.timeout_s);
    if (visibility > 43200) {
      throw new TopologyError(`consumer ${c.name}: 6 x function.timeout_s exceeds the 12 h SQS visibility limit`);
    }
    const dlq = this.deadLetterQueue(`${id}Dlq`, dlqName(c), fifo);
    const queue = this.queue(`${id}Queue`, {
      queueName: queueName(c),
      fifo: fifo || undefined,
      visibilityTimeout: cdk.Duration.seconds(visibility),
      deadLetterQueue: { queue: dlq, maxReceiveCount: c.queue.max_receive_count },
    });
    this.alarm(
      `${id}QueueAge`,
      queue.metricApproximateAgeOfOldestMessage({ period: ALARM_PERIOD, statistic: 'Maximum' }),
      // Older than a message that failed every receive: the consumer is falling behind.
      Math.max(300, visibility * c.queue.max_receive_count),
      `${queueName(c)} is not keeping up`,
    );

    const fn = this.rustFunction(id, c.name, 'consumers', c.handler, c.function, c.permissions);
    fn.addEventSource(
      new SqsEventSource(queue, {
        batchSize: c.queue.batch_size,
        // Lambda takes no batching window at all on FIFO queues.
        maxBatchingWindow: fifo ? undefined : cdk.Duration.millis(c.queue.batching_window_ms),
        reportBatchItemFailures: true,
      }),
    );

    c.subscriptions.forEach((s, i) => {
      if (isBusSubscription(s)) this.subscribeToBus(`${id}Rule${i}`, s, queue, dlq, fifo);
      else this.subscribeToTopic(`${id}Subscription${i}`, c.name, s, queue, dlq, fifo);
    });
  }

  /** Lets one service send to a queue, for one rule or topic only. */
  private allowSend(queue: sqs.Queue, service: string, sourceArn: string): IDependable {
    return queue.addToResourcePolicy(
      new iam.PolicyStatement({
        principals: [new iam.ServicePrincipal(service)],
        actions: ['sqs:SendMessage'],
        resources: [queue.queueArn],
        conditions: { ArnEquals: { 'aws:SourceArn': sourceArn } },
      }),
    ).policyDependable!;
  }

  private subscribeToBus(
    id: string,
    s: BusSubscription,
    queue: sqs.Queue,
    dlq: sqs.Queue,
    fifo: boolean | undefined,
  ): void {
    const bus = this.buses.get(s.bus)!;
    // L1 on purpose: the pattern goes into the template exactly as the topology has it.
    const rule = new events.CfnRule(this, id, {
      name: s.rule,
      eventBusName: bus.eventBusName,
      eventPattern: s.pattern,
      targets: [
        {
          id: 'queue',
          arn: queue.queueArn,
          // EventBridge takes only standard queues as a target DLQ.
          deadLetterConfig: fifo ? undefined : { arn: dlq.queueArn },
          sqsParameters: fifo ? { messageGroupId: s.rule } : undefined,
        },
      ],
    });
    for (const q of fifo ? [queue] : [queue, dlq]) this.allowSend(q, 'events.amazonaws.com', rule.attrArn);
  }

  private subscribeToTopic(
    id: string,
    consumer: string,
    s: TopicSubscription,
    queue: sqs.Queue,
    dlq: sqs.Queue,
    fifo: boolean | undefined,
  ): void {
    const topic = this.topics.get(s.topic)!;
    if (fifo && !topic.fifo)
      throw new TopologyError(`consumer ${consumer}: a FIFO queue cannot subscribe to the standard topic ${s.topic}`);
    const policies = [queue, dlq].map((q) => this.allowSend(q, 'sns.amazonaws.com', topic.topicArn));
    const subscription = new sns.CfnSubscription(this, id, {
      topicArn: topic.topicArn,
      protocol: 'sqs',
      endpoint: queue.queueArn,
      rawMessageDelivery: true,
      filterPolicyScope: s.filter_policy_scope,
      filterPolicy: s.filter_policy,
      redrivePolicy: { deadLetterTargetArn: dlq.queueArn },
    });
    // Deliveries made before the queue policy exists would be lost.
    subscription.node.addDependency(...policies);
  }

  private addStreamConsumer(s: StreamConsumerSpec): void {
    const id = `StreamConsumer-${s.name}`;
    const failures = this.deadLetterQueue(`${id}Failures`, onFailureQueueName(s), false);
    const fn = this.rustFunction(id, s.name, 'consumers', s.handler, s.function, s.permissions);
    // By hand rather than DynamoEventSource, whose grant lists streams on every table (`Resource: *`).
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'StreamRead',
        actions: ['dynamodb:DescribeStream', 'dynamodb:GetRecords', 'dynamodb:GetShardIterator'],
        resources: [this.table.tableStreamArn!],
      }),
    );
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'StreamList',
        actions: ['dynamodb:ListStreams'],
        resources: [`${this.table.tableArn}/stream/*`],
      }),
    );
    fn.addEventSourceMapping(`${id}Stream`, {
      eventSourceArn: this.table.tableStreamArn!,
      // From the oldest record: nothing in the stream is skipped.
      startingPosition: lambda.StartingPosition.TRIM_HORIZON,
      batchSize: s.batch_size,
      retryAttempts: s.retry_attempts,
      bisectBatchOnError: s.bisect_batch_on_error,
      reportBatchItemFailures: true,
      onFailure: new SqsDlq(failures),
      // The same filter the local runtime applies: records it drops never invoke the function.
      filters: s.filter_criteria.length ? s.filter_criteria.map((p) => lambda.FilterCriteria.filter(p)) : undefined,
    });
    this.alarm(
      `${id}IteratorAge`,
      fn.metric('IteratorAge', { period: ALARM_PERIOD, statistic: 'Maximum' }),
      ITERATOR_AGE_ALARM.toMilliseconds(),
      `${s.name} is ${ITERATOR_AGE_ALARM.toHumanString()} behind the table stream`,
    );
  }

  private addApi(): void {
    const api = this.props.topology.api;
    const fn = this.rustFunction('Api', api.name, 'producer', api.name, api.function, api.permissions);
    // A retried command answers from its Idempotency-Key record: the API's
    // one kind of table write, held to those records' partition keys.
    fn.role!.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'IdempotencyRecords',
        actions: IDEMPOTENCY_WRITE,
        resources: [this.table.tableArn],
        conditions: { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': [IDEMPOTENCY_KEYS] } },
      }),
    );
    const httpApi = new apigw.HttpApi(this, 'HttpApi', {
      apiName: api.name,
      description: 'Switchyard orders and images API',
      createDefaultStage: false,
      defaultIntegration: new HttpLambdaIntegration('ApiIntegration', fn),
      defaultAuthorizer: this.props.apiAuth === 'iam' ? new HttpIamAuthorizer() : undefined,
    });
    this.alarm(
      'Api5xx',
      httpApi.metricServerError({ period: ALARM_PERIOD, statistic: 'Sum' }),
      1,
      `${api.name} answered 5xx`,
    );
    const accessLogs = this.logGroup('ApiAccessLogs');
    const stage = new apigw.HttpStage(this, 'ApiStage', {
      httpApi,
      stageName: '$default',
      autoDeploy: true,
      throttle: { rateLimit: 100, burstLimit: 200 },
      accessLogSettings: {
        destination: new apigw.LogGroupLogDestination(accessLogs),
        format: cdk.aws_apigateway.AccessLogFormat.jsonWithStandardFields(),
      },
    });
    if (this.props.apiAuth === 'none') {
      const route = httpApi.node.findAll().find((c) => c instanceof apigw.CfnRoute);
      if (route) {
        skipCheckov(route, {
          id: 'CKV_AWS_309',
          comment: 'Deployed with -c apiAuth=none on purpose: the API is open to anyone who has its URL.',
        });
      }
    }
    new cdk.CfnOutput(this, 'ApiUrl', { value: stage.url, description: 'Base URL of the orders and images HTTP API' });
  }
}
