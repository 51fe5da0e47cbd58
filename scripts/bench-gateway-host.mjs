// Runs the portcullis CLI in this process for benchmarks that need the gateway's heap: started
// with `node --expose-gc`, it answers SIGUSR2 with a line `heap <bytes>` on stderr after two full
// collections. Bench-only; the product exposes nothing of the kind.
process.on('SIGUSR2', () => {
  globalThis.gc?.();
  globalThis.gc?.();
  process.stderr.write(`heap ${process.memoryUsage().heapUsed}\n`);
});
await import('../apps/portcullis/dist/bin.js');
