//! Certificates for the local control plane (and for test servers the API server must trust).
//!
//! Pure: everything returns PEM strings; writing them to disk is the caller's job.
//! Keys are ECDSA P-256, which every component accepts, including as service-account keys.

use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

use crate::error::Result;

/// A self-signed certificate authority that can issue leaf certificates.
pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    key_pem: String,
}

/// A PEM certificate and its PKCS#8 PEM private key.
#[derive(Clone)]
pub struct CertifiedKey {
    pub cert_pem: String,
    pub key_pem: String,
}

/// What a leaf certificate is for.
#[derive(Debug, Clone, Default)]
pub struct LeafSpec {
    pub common_name: String,
    /// Kubernetes maps O= to groups (`system:masters` grants cluster-admin).
    pub organizations: Vec<String>,
    pub ip_sans: Vec<IpAddr>,
    pub dns_sans: Vec<String>,
    pub server: bool,
    pub client: bool,
}

impl LeafSpec {
    /// A serving certificate for loopback addresses plus any extra DNS names.
    pub fn server(common_name: &str, ip_sans: &[IpAddr], dns_sans: &[&str]) -> Self {
        LeafSpec {
            common_name: common_name.to_owned(),
            ip_sans: ip_sans.to_vec(),
            dns_sans: dns_sans.iter().map(|s| (*s).to_owned()).collect(),
            server: true,
            ..LeafSpec::default()
        }
    }

    /// A client certificate for a user name and its groups.
    pub fn client(user: &str, groups: &[&str]) -> Self {
        LeafSpec {
            common_name: user.to_owned(),
            organizations: groups.iter().map(|s| (*s).to_owned()).collect(),
            client: true,
            ..LeafSpec::default()
        }
    }
}

impl CertificateAuthority {
    pub fn new(common_name: &str) -> Result<Self> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = name(common_name, &[]);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key)?;
        let key_pem = key.serialize_pem();
        Ok(CertificateAuthority {
            cert_pem: cert.pem(),
            key_pem,
            issuer: Issuer::new(params, key),
        })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA key; kube-controller-manager signs CSRs with it.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    pub fn issue(&self, spec: &LeafSpec) -> Result<CertifiedKey> {
        let key = KeyPair::generate()?;
        let mut sans: Vec<String> = spec.ip_sans.iter().map(IpAddr::to_string).collect();
        sans.extend(spec.dns_sans.iter().cloned());
        let mut params = CertificateParams::new(sans)?;
        let orgs: Vec<&str> = spec.organizations.iter().map(String::as_str).collect();
        params.distinguished_name = name(&spec.common_name, &orgs);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        if spec.server {
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ServerAuth);
        }
        if spec.client {
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ClientAuth);
        }
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(CertifiedKey {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// A key pair for signing service-account tokens: (private PEM, public PEM).
pub fn service_account_key() -> Result<(String, String)> {
    let key = KeyPair::generate()?;
    Ok((key.serialize_pem(), key.public_key_pem()))
}

fn name(common_name: &str, organizations: &[&str]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    for org in organizations {
        dn.push(DnType::OrganizationName, *org);
    }
    dn
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn issued_certificates_are_pem_and_distinct() {
        let ca = CertificateAuthority::new("test-ca").unwrap();
        let server = ca
            .issue(&LeafSpec::server(
                "apiserver",
                &[IpAddr::V4(Ipv4Addr::LOCALHOST)],
                &["localhost"],
            ))
            .unwrap();
        let client = ca
            .issue(&LeafSpec::client("admin", &["system:masters"]))
            .unwrap();
        assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(server.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(server.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert_ne!(server.cert_pem, client.cert_pem);
        assert_ne!(server.key_pem, client.key_pem);
        assert_ne!(ca.key_pem(), server.key_pem);
    }

    #[test]
    fn service_account_key_has_matching_public_half() {
        let (private, public) = service_account_key().unwrap();
        assert!(private.contains("PRIVATE KEY"));
        assert!(public.starts_with("-----BEGIN PUBLIC KEY-----"));
        let reparsed = KeyPair::from_pem(&private).unwrap();
        assert_eq!(reparsed.public_key_pem(), public);
    }
}
