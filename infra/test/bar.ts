// The bar, as checks on a template: one queue + DLQ + function + event
// source per consumer, and every rule pattern and filter policy byte for byte
// what `switchyard topology export` printed. Used on the template synthesised
// in-process and on the one `cdk synth` wrote.
import assert from 'node:assert/strict';
import { Topology, dlqName, isBusSubscription, queueName } from '../lib/topology';
import { Synth, only, refId } from './helpers';

export function queueByName(s: Synth, name: string) {
  return only(s, 'AWS::SQS::Queue', (p) => p.QueueName === name);
}

export function functionOf(s: Synth, name: string) {
  return only(s, 'AWS::Lambda::Function', (p) => p.Environment?.Variables?.SWITCHYARD_CONSUMER === name);
}

/** Queue, DLQ (its redrive target), function and the event source joining them, for every consumer. */
export function assertOnePerConsumer(s: Synth, exported: Topology): void {
  for (const c of exported.consumers) {
    const [dlqId] = queueByName(s, dlqName(c));
    const [queueId, queue] = queueByName(s, queueName(c));
    assert.equal(refId(queue.Properties.RedrivePolicy.deadLetterTargetArn), dlqId, c.name);
    const [fnId] = functionOf(s, c.name);
    const [, esm] = only(s, 'AWS::Lambda::EventSourceMapping', (p) => refId(p.EventSourceArn) === queueId);
    assert.equal(refId(esm.Properties.FunctionName), fnId, c.name);
  }
}

/** `exported` must come straight from JSON.parse of the export, so nothing the stack did touched it. */
export function assertPatternsExact(s: Synth, exported: Topology): number {
  let seen = 0;
  for (const c of exported.consumers) {
    for (const sub of c.subscriptions.filter(isBusSubscription)) {
      const [, rule] = only(s, 'AWS::Events::Rule', (p) => p.Name === sub.rule);
      assert.equal(JSON.stringify(rule.Properties.EventPattern), JSON.stringify(sub.pattern), sub.rule);
      const [busId] = only(s, 'AWS::Events::EventBus', (p) => p.Name === sub.bus);
      assert.equal(refId(rule.Properties.EventBusName), busId);
      assert.equal(refId(rule.Properties.Targets[0].Arn), queueByName(s, queueName(c))[0]);
      seen++;
    }
  }
  return seen;
}

export function assertFilterPoliciesExact(s: Synth, exported: Topology): number {
  let seen = 0;
  for (const c of exported.consumers) {
    const [queueId] = queueByName(s, queueName(c));
    for (const sub of c.subscriptions) {
      if (isBusSubscription(sub)) continue;
      const [, subscription] = only(s, 'AWS::SNS::Subscription', (p) => refId(p.Endpoint) === queueId);
      assert.equal(JSON.stringify(subscription.Properties.FilterPolicy), JSON.stringify(sub.filter_policy), c.name);
      assert.equal(subscription.Properties.FilterPolicyScope, sub.filter_policy_scope);
      const [topicId] = only(s, 'AWS::SNS::Topic', (p) => p.TopicName === sub.topic);
      assert.equal(refId(subscription.Properties.TopicArn), topicId);
      seen++;
    }
  }
  return seen;
}
