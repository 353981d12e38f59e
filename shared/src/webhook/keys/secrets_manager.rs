//! The master keys in AWS Secrets Manager: the secret's `AWSCURRENT`
//! version, and its `AWSPREVIOUS` one if it has been rotated. They are read
//! on first use and kept for the life of the process (a Lambda execution
//! environment), so a rotation reaches each function within its
//! environments' lifetime, and signing both keys covers the overlap.

use super::{KeyError, KeySource, MIN_MASTER_KEY_BYTES, MasterKeys};
use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use tokio::sync::OnceCell;

/// The master keys kept in the Secrets Manager secret `secret_id`.
#[derive(Debug)]
pub struct SecretsManagerKeys {
    client: Client,
    secret_id: String,
    keys: OnceCell<MasterKeys>,
}

impl SecretsManagerKeys {
    pub fn new(client: Client, secret_id: impl Into<String>) -> Self {
        Self {
            client,
            secret_id: secret_id.into(),
            keys: OnceCell::new(),
        }
    }

    /// The secret string of version `stage`, if the secret has one.
    async fn version(&self, stage: &str) -> Result<Option<Vec<u8>>, KeyError> {
        match self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .version_stage(stage)
            .send()
            .await
        {
            Ok(output) => Ok(output.secret_string.map(String::into_bytes)),
            Err(error)
                if stage != "AWSCURRENT"
                    && error.as_service_error().and_then(|e| e.code())
                        == Some("ResourceNotFoundException") =>
            {
                Ok(None)
            }
            Err(error) => Err(KeyError::Unavailable(
                aws_sdk_secretsmanager::error::DisplayErrorContext(error).to_string(),
            )),
        }
    }

    async fn load(&self) -> Result<MasterKeys, KeyError> {
        let current = self
            .version("AWSCURRENT")
            .await?
            .ok_or_else(|| KeyError::Unavailable("the secret has no string value".into()))?;
        if current.len() < MIN_MASTER_KEY_BYTES {
            return Err(KeyError::TooShort(current.len()));
        }
        let previous = self.version("AWSPREVIOUS").await?;
        Ok(MasterKeys::new(current, previous))
    }
}

#[async_trait]
impl KeySource for SecretsManagerKeys {
    async fn keys(&self) -> Result<MasterKeys, KeyError> {
        self.keys.get_or_try_init(|| self.load()).await.cloned()
    }
}
