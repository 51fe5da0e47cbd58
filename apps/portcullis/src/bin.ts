#!/usr/bin/env node
import { describeError } from '@portcullis/core';
import { buildProgram, ExitCode } from './cli.js';

buildProgram()
  .parseAsync(process.argv)
  .catch((error: unknown) => {
    process.stderr.write(`portcullis: ${describeError(error)}\n`);
    process.exit(ExitCode.Failure);
  });
