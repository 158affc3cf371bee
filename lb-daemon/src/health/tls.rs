//! The two rustls client configurations of HTTPS checks, built once: one
//! that verifies the server's certificate against the system's roots, and
//! one that accepts any certificate (`verify_tls = false`) but still checks
//! the handshake signatures, so the TLS session itself is sound.

use std::sync::Arc;

use rustls::{
    ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::{WebPkiSupportedAlgorithms, ring},
    pki_types::{CertificateDer, ServerName, UnixTime},
};

/// The client configurations of HTTPS checks. Cheap to clone.
#[derive(Clone, Debug)]
pub struct TlsConfigs {
    verified: Arc<ClientConfig>,
    unverified: Arc<ClientConfig>,
}

impl TlsConfigs {
    /// With the system's CA certificates (`rustls-native-certs`). Missing
    /// or unreadable certificates are logged, not fatal: verified checks
    /// then fail with a certificate error.
    pub fn new() -> Result<Self, rustls::Error> {
        let native = rustls_native_certs::load_native_certs();
        for error in &native.errors {
            tracing::warn!("loading the system's CA certificates: {error}");
        }
        let mut roots = RootCertStore::empty();
        let (added, ignored) = roots.add_parsable_certificates(native.certs);
        if ignored > 0 {
            tracing::warn!("{ignored} of the system's CA certificates could not be parsed");
        }
        if added == 0 {
            tracing::warn!(
                "no system CA certificates found: HTTPS checks with verify_tls = true will fail"
            );
        }
        tracing::debug!("HTTPS checks trust {added} CA certificates");
        Self::with_roots(roots)
    }

    /// With the given trust anchors (tests, or a private CA).
    pub fn with_roots(roots: RootCertStore) -> Result<Self, rustls::Error> {
        let provider = Arc::new(ring::default_provider());
        let mut verified = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        verified.alpn_protocols = vec![b"http/1.1".to_vec()];
        let mut unverified = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate {
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth();
        unverified.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            verified: Arc::new(verified),
            unverified: Arc::new(unverified),
        })
    }

    /// The configuration for `verify_tls`.
    #[must_use]
    pub fn config(&self, verify: bool) -> Arc<ClientConfig> {
        if verify {
            self.verified.clone()
        } else {
            self.unverified.clone()
        }
    }
}

/// Accepts any certificate chain (the check asked not to verify it) but
/// verifies handshake signatures with the provider's algorithms.
#[derive(Debug)]
struct AcceptAnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
