//! The command line of `jobline smoke`, the checks a deployer runs on a
//! stack after `sam deploy`. `docs/cli.md` and `docs/go-live.md` describe it.

use super::ApiArgs;
use clap::Args;

/// How long each check may take by default, in seconds.
pub const DEFAULT_CHECK_TIMEOUT_SECS: u64 = 60;

/// `jobline smoke`: which API, how long each check may take, and the
/// optional checks' targets.
#[derive(Debug, Args)]
pub struct SmokeArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// Give up on a check after this many seconds (it fails).
    #[arg(long, default_value_t = DEFAULT_CHECK_TIMEOUT_SECS, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,
    /// A webhook receiver you run (an https URL the stack can reach, which
    /// answers 2xx): a job is submitted with it as its `callbackUrl`, and
    /// its webhook must be delivered. Without it the check is skipped.
    #[arg(long, value_name = "URL")]
    pub webhook_receiver: Option<String>,
    /// The dead-letter queue (the stack output `DeadLetterQueueUrl`): its
    /// approximate depth is read with your AWS credentials and reported.
    /// Without it the check is skipped.
    #[arg(long, env = "JOBS_DLQ_URL", value_name = "URL")]
    pub dlq_url: Option<String>,
}

#[cfg(test)]
mod tests {
    use crate::args::{Cli, Command};
    use clap::Parser;
    use clap::error::ErrorKind;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("jobline").chain(args.iter().copied()))
    }

    #[test]
    fn smoke_takes_the_api_a_timeout_and_the_optional_checks() {
        let Command::Smoke(smoke) = parse(&[
            "smoke",
            "--api",
            "https://abc.execute-api.eu-west-1.amazonaws.com",
            "--sigv4",
            "--timeout",
            "30",
            "--webhook-receiver",
            "https://hooks.example.com/jobline",
            "--dlq-url",
            "https://sqs.eu-west-1.amazonaws.com/123456789012/jobs-dlq",
        ])
        .unwrap()
        .command
        else {
            panic!("expected smoke")
        };
        assert_eq!(
            smoke.api.api_url,
            "https://abc.execute-api.eu-west-1.amazonaws.com"
        );
        assert!(smoke.api.sigv4);
        assert_eq!(smoke.timeout, 30);
        assert_eq!(
            smoke.webhook_receiver.as_deref(),
            Some("https://hooks.example.com/jobline")
        );
        assert_eq!(
            smoke.dlq_url.as_deref(),
            Some("https://sqs.eu-west-1.amazonaws.com/123456789012/jobs-dlq")
        );

        let Command::Smoke(defaults) = parse(&["smoke"]).unwrap().command else {
            panic!("expected smoke")
        };
        assert_eq!(defaults.timeout, super::DEFAULT_CHECK_TIMEOUT_SECS);
        assert!(defaults.webhook_receiver.is_none());

        let zero = parse(&["smoke", "--timeout", "0"]).unwrap_err();
        assert_eq!(zero.kind(), ErrorKind::ValueValidation);
    }
}
