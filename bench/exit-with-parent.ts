// Preloaded (`--import`) into product processes the bench starts. The bench holds an IPC channel to each
// of them; if the bench dies without stopping them (SIGKILL, crash), the channel closes and the process
// stops the way users stop it, with SIGTERM, instead of delivering alerts for a bench that is gone.
if (process.channel) {
  // The channel must not keep a process alive that would otherwise exit on its own.
  process.channel.unref();
  process.on("disconnect", () => {
    process.kill(process.pid, "SIGTERM");
    setTimeout(() => process.exit(1), 10_000).unref();
  });
}
