//! The webhook's serving certificate: loaded from files (a cert-manager or chart Secret), or generated at start
//! as a self-signed CA plus a serving certificate signed by it. The CA PEM is what a webhook configuration's
//! `caBundle` must carry; generated material lives only in memory and changes on every start, which is why
//! registration (`register.rs`) re-applies the `caBundle` each time.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::WebhookError;

/// Where the serving certificate comes from.
#[derive(Clone, Debug)]
pub enum CertSource {
    /// PEM files; `ca_file` is the caBundle for registration (default: the certificate file itself, which
    /// is right for a self-signed certificate).
    Files {
        cert_file: PathBuf,
        key_file: PathBuf,
        ca_file: Option<PathBuf>,
    },
    /// Generate a CA and a serving certificate whose SANs are these hosts (IP literals become IP SANs, the
    /// rest DNS SANs).
    SelfSigned { hosts: Vec<String> },
}

/// Serving certificate chain and key, plus the CA that clients should trust.
#[derive(Clone)]
pub struct ServingCert {
    pub cert_pem: String,
    /// Never logged.
    pub key_pem: String,
    pub ca_pem: String,
}

impl std::fmt::Debug for ServingCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServingCert")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .field("ca_pem", &self.ca_pem)
            .finish()
    }
}

/// Default SANs of a generated certificate: the loopback address the local API server calls.
pub const DEFAULT_HOSTS: [&str; 2] = ["127.0.0.1", "localhost"];

impl ServingCert {
    /// Loads or generates, per `source`.
    pub fn obtain(source: &CertSource) -> Result<Self, WebhookError> {
        match source {
            CertSource::Files {
                cert_file,
                key_file,
                ca_file,
            } => {
                let cert_pem = read(cert_file)?;
                let key_pem = read(key_file)?;
                let ca_pem = match ca_file {
                    Some(path) => read(path)?,
                    None => cert_pem.clone(),
                };
                let cert = ServingCert {
                    cert_pem,
                    key_pem,
                    ca_pem,
                };
                // Fail at start, not on the first handshake.
                cert.rustls_config()?;
                Ok(cert)
            }
            CertSource::SelfSigned { hosts } => Self::self_signed(hosts),
        }
    }

    /// A fresh CA (`clb-controller-webhook-ca`) and a serving certificate for `hosts`, ECDSA P-256.
    pub fn self_signed(hosts: &[String]) -> Result<Self, WebhookError> {
        let hosts: Vec<String> = if hosts.is_empty() {
            DEFAULT_HOSTS.iter().map(|h| (*h).to_owned()).collect()
        } else {
            hosts.to_vec()
        };
        let ca_key = KeyPair::generate().map_err(cert_error)?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(cert_error)?;
        ca_params.distinguished_name = common_name("clb-controller-webhook-ca");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).map_err(cert_error)?;
        let ca_pem = ca_cert.pem();
        let issuer = Issuer::new(ca_params, ca_key);

        let key = KeyPair::generate().map_err(cert_error)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(cert_error)?;
        params.subject_alt_names = hosts
            .iter()
            .map(|h| san(h))
            .collect::<Result<Vec<_>, _>>()?;
        params.distinguished_name = common_name(&hosts[0]);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &issuer).map_err(cert_error)?;
        Ok(ServingCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            ca_pem,
        })
    }

    /// A rustls server configuration with the ring provider chosen explicitly (two providers are linked,
    /// so the process-wide default may be unset).
    pub fn rustls_config(&self) -> Result<Arc<rustls::ServerConfig>, WebhookError> {
        let chain = CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| WebhookError::Certificate(format!("certificate PEM: {e}")))?;
        if chain.is_empty() {
            return Err(WebhookError::Certificate(
                "certificate PEM holds no certificate".into(),
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes())
            .map_err(|e| WebhookError::Certificate(format!("private key PEM: {e}")))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| WebhookError::Certificate(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| WebhookError::Certificate(format!("certificate and key: {e}")))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

fn read(path: &Path) -> Result<String, WebhookError> {
    std::fs::read_to_string(path).map_err(|e| WebhookError::Io(path.display().to_string(), e))
}

fn san(host: &str) -> Result<SanType, WebhookError> {
    let host = host.trim();
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let name = host
        .to_owned()
        .try_into()
        .map_err(|e| WebhookError::Certificate(format!("--webhook-host {host:?}: {e}")))?;
    Ok(SanType::DnsName(name))
}

fn common_name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

fn cert_error(e: rcgen::Error) -> WebhookError {
    WebhookError::Certificate(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_cert_loads_into_rustls_and_keeps_the_ca() {
        let cert = ServingCert::self_signed(&["127.0.0.1".into(), "webhook.bcs-system.svc".into()])
            .unwrap();
        assert!(cert.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert_ne!(cert.ca_pem, cert.cert_pem);
        assert!(cert.rustls_config().is_ok());
        assert!(!format!("{cert:?}").contains("PRIVATE KEY"));
    }

    #[test]
    fn files_are_loaded_and_the_ca_defaults_to_the_certificate() {
        let generated = ServingCert::self_signed(&[]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cert_file = dir.path().join("tls.crt");
        let key_file = dir.path().join("tls.key");
        std::fs::write(&cert_file, &generated.cert_pem).unwrap();
        std::fs::write(&key_file, &generated.key_pem).unwrap();
        let loaded = ServingCert::obtain(&CertSource::Files {
            cert_file,
            key_file: key_file.clone(),
            ca_file: None,
        })
        .unwrap();
        assert_eq!(loaded.cert_pem, generated.cert_pem);
        assert_eq!(loaded.ca_pem, generated.cert_pem);

        let missing = ServingCert::obtain(&CertSource::Files {
            cert_file: dir.path().join("absent.crt"),
            key_file,
            ca_file: None,
        });
        assert!(matches!(missing, Err(WebhookError::Io(path, _)) if path.ends_with("absent.crt")));
    }

    #[test]
    fn a_key_that_does_not_match_is_refused_at_load() {
        let a = ServingCert::self_signed(&[]).unwrap();
        let b = ServingCert::self_signed(&[]).unwrap();
        let mixed = ServingCert {
            key_pem: b.key_pem,
            ..a
        };
        assert!(matches!(
            mixed.rustls_config(),
            Err(WebhookError::Certificate(_))
        ));
    }
}
