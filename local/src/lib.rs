//! Jobline on one machine, with the AWS parts Lambda would supply played by
//! ordinary code: an HTTP server in front of the API handler (API Gateway's
//! part) and a poller in front of the worker (the SQS event source mapping's
//! part). The handlers are the very ones the Lambda binaries run.

pub mod poller;
pub mod server;
