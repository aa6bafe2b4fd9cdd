#!/usr/bin/env node
// `cdk synth` / `cdk deploy` entry point (see cdk.json).
import { buildApp } from '../lib/app';

const { app } = buildApp();
app.synth();
