//! The suites that drive headless Chromium (the browser harness's own check
//! and the web console's), built as a test binary, so a process, of their
//! own: each waits for pages with wall-clock bounds (10 s an element),
//! which another suite's load on the emulator, beside them in one process,
//! would eat into.

mod browser;
mod console;
