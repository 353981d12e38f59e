//! The API's routes, one file each; `Api::handle` (in `lib.rs`) picks the
//! route and maps its error to HTTP in one place (`error.rs`).

mod job;
mod list;
mod schedules;
mod secret;
mod submit;
mod uploads;
