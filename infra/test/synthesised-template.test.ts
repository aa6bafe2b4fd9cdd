// The bar, checked on the template `cdk synth` wrote (the one cfn-lint and
// checkov read), against the export it was built from. scripts/test-infra
// synthesises first and names the file in SWITCHYARD_SYNTH_TEMPLATE.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { describe, it } from 'node:test';
import { Template } from 'aws-cdk-lib/assertions';
import { Topology } from '../lib/topology';
import { assertFilterPoliciesExact, assertOnePerConsumer, assertPatternsExact } from './bar';
import { Synth, exportedTopologyText, resourcesOfType } from './helpers';

const file = process.env.SWITCHYARD_SYNTH_TEMPLATE;

describe('the template cdk synth wrote', { skip: file ? false : 'SWITCHYARD_SYNTH_TEMPLATE is not set' }, () => {
  it('holds one queue + DLQ + function + event source per consumer, and the exported patterns and filter policies byte for byte', () => {
    const template = Template.fromJSON(JSON.parse(fs.readFileSync(file!, 'utf8')));
    const s: Synth = { template, json: template.toJSON() as Synth['json'] };
    const exported = JSON.parse(exportedTopologyText()) as Topology;
    assertOnePerConsumer(s, exported);
    const subscriptions = exported.consumers.flatMap((c) => c.subscriptions).length;
    assert.equal(assertPatternsExact(s, exported) + assertFilterPoliciesExact(s, exported), subscriptions);
    assert.equal(
      resourcesOfType(s, 'AWS::Lambda::EventSourceMapping').length,
      exported.consumers.length + exported.stream_consumers.length,
    );
  });
});
