//! `hello-lambda`: the smallest useful `lambda_runtime` function, the
//! baseline that Jobline's init time is compared with. It is built with the
//! workspace's release profile and the same `lambda_runtime` and `tokio`
//! features as `jobline-worker`, and sets up logging the way the
//! `cargo lambda new` template does, so what remains of the difference is
//! Jobline's own start-up: configuration, SDK clients, job types.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<Value, Error>(json!({ "hello": event.payload }))
    }))
    .await
}
