// The topology as `switchyard topology export` prints it (see
// router-rules/src/topology.rs for the Rust types). The stack is built from
// this alone, so a new consumer needs no code here.
import * as fs from 'node:fs';

export interface Named {
  name: string;
  fifo?: boolean;
}

export interface RouteSpec {
  bus?: string;
  topic?: string;
}

export interface FunctionSpec {
  timeout_s: number;
  memory_mb: number;
  /** The Cargo package folder, from the repository root, that builds the function (`consumers` when absent). */
  package?: string;
  /** That package's binary (the handler's name when absent). */
  binary?: string;
}

export type TableAccess = 'read' | 'read-write';

export interface Permissions {
  table?: TableAccess;
  blobs?: { read: string[]; write: string[] };
  publish: RouteSpec[];
}

export interface QueueSpec {
  fifo?: boolean;
  visibility_timeout_s: number;
  max_receive_count: number;
  batch_size: number;
  batching_window_ms: number;
}

export interface BusSubscription {
  bus: string;
  rule: string;
  pattern: Record<string, unknown>;
}

export interface TopicSubscription {
  topic: string;
  filter_policy_scope: 'MessageAttributes' | 'MessageBody';
  filter_policy: Record<string, unknown>;
}

export type Subscription = BusSubscription | TopicSubscription;

export interface ConsumerSpec {
  name: string;
  handler: string;
  queue: QueueSpec;
  function: FunctionSpec;
  permissions: Permissions;
  subscriptions: Subscription[];
}

export interface StreamConsumerSpec {
  name: string;
  handler: string;
  batch_size: number;
  retry_attempts: number;
  bisect_batch_on_error: boolean;
  function: FunctionSpec;
  permissions: Permissions;
  /** Lambda event filtering: EventBridge patterns over the stream record (typed images). Empty: every record. */
  filter_criteria: Record<string, unknown>[];
}

/** Lambda's default quota of filters per event source mapping (the Rust side checks the same). */
export const MAX_STREAM_FILTERS = 5;

export interface ApiSpec {
  name: string;
  function: FunctionSpec;
  permissions: Permissions;
}

export interface Topology {
  table: { name: string };
  bucket: { name: string; uploads_prefix: string };
  buses: Named[];
  topics: Named[];
  routes: Record<string, RouteSpec>;
  consumers: ConsumerSpec[];
  stream_consumers: StreamConsumerSpec[];
  api: ApiSpec;
}

export class TopologyError extends Error {
  constructor(message: string) {
    super(`topology: ${message}`);
    this.name = 'TopologyError';
  }
}

export function isBusSubscription(s: Subscription): s is BusSubscription {
  return 'bus' in s;
}

/** Same as the Rust side: `orders` has queue `orders`, FIFO adds `.fifo`. */
export function queueName(c: ConsumerSpec): string {
  return `${c.name}${c.queue.fifo ? '.fifo' : ''}`;
}

export function dlqName(c: ConsumerSpec): string {
  return `${c.name}-dlq${c.queue.fifo ? '.fifo' : ''}`;
}

export function onFailureQueueName(s: StreamConsumerSpec): string {
  return `${s.name}-failures`;
}

export function topicResourceName(t: Named): string {
  return t.fifo && !t.name.endsWith('.fifo') ? `${t.name}.fifo` : t.name;
}

/** `SWITCHYARD_BUS_` + `orders-v2` -> `SWITCHYARD_BUS_ORDERS_V2`, as the Lambda binaries read it. */
export function envName(prefix: string, name: string): string {
  return prefix + name.replace(/[^A-Za-z0-9]/g, '_').toUpperCase();
}

export function loadTopology(path: string): Topology {
  let text: string;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (e) {
    throw new TopologyError(
      `cannot read ${path} (${(e as Error).message}); produce it with ` +
        '`cargo run -q -- topology export > infra/build/topology.json` or pass `-c topology=PATH`',
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new TopologyError(`${path} is not JSON: ${(e as Error).message}`);
  }
  return parseTopology(value, path);
}

// A small reader that names the path of whatever is wrong; the Rust side has
// already validated the file, so this guards against hand-edited copies.
class Reader {
  constructor(readonly where: string) {}

  fail(path: string, what: string): never {
    throw new TopologyError(`${this.where}: ${path}: ${what}`);
  }

  object(v: unknown, path: string): Record<string, unknown> {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(path, 'expected an object');
    return v as Record<string, unknown>;
  }

  array(v: unknown, path: string): unknown[] {
    if (!Array.isArray(v)) this.fail(path, 'expected an array');
    return v;
  }

  string(v: unknown, path: string): string {
    if (typeof v !== 'string' || v.length === 0) this.fail(path, 'expected a non-empty string');
    return v;
  }

  uint(v: unknown, path: string, min: number, max: number): number {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      this.fail(path, `expected an integer in ${min}..=${max}, got ${JSON.stringify(v)}`);
    }
    return v;
  }

  bool(v: unknown, path: string): boolean {
    if (typeof v !== 'boolean') this.fail(path, 'expected true or false');
    return v;
  }

  optionalBool(v: unknown, path: string): boolean | undefined {
    return v === undefined ? undefined : this.bool(v, path);
  }

  named(v: unknown, path: string): Named {
    const o = this.object(v, path);
    return { name: this.string(o.name, `${path}.name`), fifo: this.optionalBool(o.fifo, `${path}.fifo`) };
  }

  route(v: unknown, path: string): RouteSpec {
    const o = this.object(v, path);
    const bus = o.bus === undefined ? undefined : this.string(o.bus, `${path}.bus`);
    const topic = o.topic === undefined ? undefined : this.string(o.topic, `${path}.topic`);
    if ((bus === undefined) === (topic === undefined)) this.fail(path, 'give exactly one of `bus` or `topic`');
    return bus !== undefined ? { bus } : { topic };
  }

  fn(v: unknown, path: string): FunctionSpec {
    const o = this.object(v, path);
    const spec: FunctionSpec = {
      // Lambda's own limits.
      timeout_s: this.uint(o.timeout_s, `${path}.timeout_s`, 1, 900),
      memory_mb: this.uint(o.memory_mb, `${path}.memory_mb`, 128, 10240),
    };
    if (o.package !== undefined) spec.package = this.packagePath(o.package, `${path}.package`);
    if (o.binary !== undefined) spec.binary = this.string(o.binary, `${path}.binary`);
    return spec;
  }

  /** A folder inside the repository: relative, without `..`. */
  packagePath(v: unknown, path: string): string {
    const p = this.string(v, path);
    if (p.startsWith('/') || p.split('/').some((part) => part === '..' || part === '')) {
      this.fail(path, 'expected a folder relative to the repository root, without `..`');
    }
    return p;
  }

  permissions(v: unknown, path: string): Permissions {
    const o = v === undefined ? {} : this.object(v, path);
    const perms: Permissions = { publish: [] };
    if (o.table !== undefined) {
      if (o.table !== 'read' && o.table !== 'read-write') this.fail(`${path}.table`, 'expected "read" or "read-write"');
      perms.table = o.table;
    }
    if (o.blobs !== undefined) {
      const b = this.object(o.blobs, `${path}.blobs`);
      const prefixes = (list: unknown, p: string) =>
        list === undefined ? [] : this.array(list, p).map((x, i) => this.prefix(x, `${p}[${i}]`));
      perms.blobs = { read: prefixes(b.read, `${path}.blobs.read`), write: prefixes(b.write, `${path}.blobs.write`) };
    }
    if (o.publish !== undefined) {
      perms.publish = this.array(o.publish, `${path}.publish`).map((r, i) => this.route(r, `${path}.publish[${i}]`));
    }
    return perms;
  }

  prefix(v: unknown, path: string): string {
    const p = this.string(v, path);
    // The prefix becomes part of an IAM resource ARN: a wildcard in it would widen the grant.
    if (/[*?]/.test(p) || p.startsWith('/'))
      this.fail(path, `blob prefix ${JSON.stringify(p)} may not hold * or ? nor start with /`);
    return p;
  }

  subscription(v: unknown, path: string): Subscription {
    const o = this.object(v, path);
    if (o.bus !== undefined) {
      return {
        bus: this.string(o.bus, `${path}.bus`),
        rule: this.string(o.rule, `${path}.rule`),
        pattern: this.object(o.pattern, `${path}.pattern`),
      };
    }
    if (o.topic !== undefined) {
      const scope = o.filter_policy_scope ?? 'MessageAttributes';
      if (scope !== 'MessageAttributes' && scope !== 'MessageBody') {
        this.fail(`${path}.filter_policy_scope`, 'expected "MessageAttributes" or "MessageBody"');
      }
      return {
        topic: this.string(o.topic, `${path}.topic`),
        filter_policy_scope: scope,
        filter_policy: this.object(o.filter_policy, `${path}.filter_policy`),
      };
    }
    return this.fail(
      path,
      'a subscription names a `bus` (with `rule` and `pattern`) or a `topic` (with `filter_policy`)',
    );
  }

  consumer(v: unknown, path: string): ConsumerSpec {
    const o = this.object(v, path);
    const q = this.object(o.queue, `${path}.queue`);
    return {
      name: this.string(o.name, `${path}.name`),
      handler: this.string(o.handler, `${path}.handler`),
      queue: {
        fifo: this.optionalBool(q.fifo, `${path}.queue.fifo`),
        // SQS's own limits.
        visibility_timeout_s: this.uint(q.visibility_timeout_s, `${path}.queue.visibility_timeout_s`, 0, 43200),
        max_receive_count: this.uint(q.max_receive_count, `${path}.queue.max_receive_count`, 1, 1000),
        batch_size: this.uint(q.batch_size, `${path}.queue.batch_size`, 1, 10000),
        batching_window_ms: this.uint(q.batching_window_ms, `${path}.queue.batching_window_ms`, 0, 300000),
      },
      function: this.fn(o.function, `${path}.function`),
      permissions: this.permissions(o.permissions, `${path}.permissions`),
      subscriptions: this.array(o.subscriptions, `${path}.subscriptions`).map((s, i) =>
        this.subscription(s, `${path}.subscriptions[${i}]`),
      ),
    };
  }

  streamConsumer(v: unknown, path: string): StreamConsumerSpec {
    const o = this.object(v, path);
    return {
      name: this.string(o.name, `${path}.name`),
      handler: this.string(o.handler, `${path}.handler`),
      batch_size: this.uint(o.batch_size, `${path}.batch_size`, 1, 10000),
      retry_attempts: this.uint(o.retry_attempts, `${path}.retry_attempts`, 0, 10000),
      bisect_batch_on_error: this.bool(o.bisect_batch_on_error, `${path}.bisect_batch_on_error`),
      function: this.fn(o.function, `${path}.function`),
      permissions: this.permissions(o.permissions, `${path}.permissions`),
      filter_criteria: this.filterCriteria(o.filter_criteria, `${path}.filter_criteria`),
    };
  }

  // The patterns themselves were checked when the Rust side loaded the topology.
  filterCriteria(v: unknown, path: string): Record<string, unknown>[] {
    if (v === undefined) return [];
    const patterns = this.array(v, path).map((p, i) => this.object(p, `${path}[${i}]`));
    if (patterns.length > MAX_STREAM_FILTERS) this.fail(path, `at most ${MAX_STREAM_FILTERS} filters (Lambda's limit)`);
    return patterns;
  }
}

export function parseTopology(value: unknown, where = 'topology'): Topology {
  const r = new Reader(where);
  const o = r.object(value, '$');
  const table = r.object(o.table, 'table');
  const bucket = r.object(o.bucket, 'bucket');
  const routes = r.object(o.routes, 'routes');
  const api = r.object(o.api, 'api');
  const topology: Topology = {
    table: { name: r.string(table.name, 'table.name') },
    bucket: {
      name: r.string(bucket.name, 'bucket.name'),
      uploads_prefix: r.prefix(bucket.uploads_prefix, 'bucket.uploads_prefix'),
    },
    buses: r.array(o.buses, 'buses').map((b, i) => r.named(b, `buses[${i}]`)),
    topics: r.array(o.topics, 'topics').map((t, i) => r.named(t, `topics[${i}]`)),
    routes: Object.fromEntries(Object.entries(routes).map(([k, v]) => [k, r.route(v, `routes.${k}`)])),
    consumers: r.array(o.consumers, 'consumers').map((c, i) => r.consumer(c, `consumers[${i}]`)),
    stream_consumers:
      o.stream_consumers === undefined
        ? []
        : r.array(o.stream_consumers, 'stream_consumers').map((s, i) => r.streamConsumer(s, `stream_consumers[${i}]`)),
    api: {
      name: r.string(api.name, 'api.name'),
      function: r.fn(api.function, 'api.function'),
      permissions: r.permissions(api.permissions, 'api.permissions'),
    },
  };
  checkReferences(topology, r);
  return topology;
}

// Names become CloudFormation logical ids and physical names; references
// must resolve, or the stack would deploy a rule with no target.
function checkReferences(t: Topology, r: Reader): void {
  const buses = new Set(t.buses.map((b) => b.name));
  const topics = new Set(t.topics.map((x) => x.name));
  const checkRoute = (route: RouteSpec, path: string) => {
    if (route.bus !== undefined && !buses.has(route.bus)) r.fail(path, `no bus named ${JSON.stringify(route.bus)}`);
    if (route.topic !== undefined && !topics.has(route.topic))
      r.fail(path, `no topic named ${JSON.stringify(route.topic)}`);
  };
  t.buses.forEach((b, i) => {
    if (b.fifo) r.fail(`buses[${i}]`, 'EventBridge buses cannot be FIFO');
  });
  const names = new Set<string>();
  const functions = [
    ...t.consumers.map((c, i) => ({ name: c.name, path: `consumers[${i}]`, perms: c.permissions })),
    ...t.stream_consumers.map((s, i) => ({ name: s.name, path: `stream_consumers[${i}]`, perms: s.permissions })),
    { name: t.api.name, path: 'api', perms: t.api.permissions },
  ];
  for (const f of functions) {
    if (!/^[A-Za-z0-9-]+$/.test(f.name))
      r.fail(`${f.path}.name`, `${JSON.stringify(f.name)}: use letters, digits and -`);
    if (names.has(f.name)) r.fail(`${f.path}.name`, `${JSON.stringify(f.name)} is declared twice`);
    names.add(f.name);
    f.perms.publish.forEach((p, i) => checkRoute(p, `${f.path}.permissions.publish[${i}]`));
  }
  Object.entries(t.routes).forEach(([k, route]) => checkRoute(route, `routes.${k}`));
  const rules = new Set<string>();
  t.consumers.forEach((c, i) => {
    if (c.subscriptions.length === 0) r.fail(`consumers[${i}]`, `consumer ${c.name} has no subscription`);
    c.subscriptions.forEach((s, j) => {
      const path = `consumers[${i}].subscriptions[${j}]`;
      if (isBusSubscription(s)) {
        checkRoute({ bus: s.bus }, path);
        const key = `${s.bus}/${s.rule}`;
        if (rules.has(key))
          r.fail(path, `rule ${JSON.stringify(s.rule)} is declared twice on bus ${JSON.stringify(s.bus)}`);
        rules.add(key);
      } else {
        checkRoute({ topic: s.topic }, path);
      }
    });
  });
}
