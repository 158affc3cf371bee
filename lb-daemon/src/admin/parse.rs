//! Parsing the service and real arguments of `lbctl` (and of requests).

use std::net::{IpAddr, SocketAddr};

use crate::balancer::model::{Protocol, ServiceAddr};

/// `VIP:PORT[/tcp|udp]`, `[V6]:PORT[/tcp|udp]`.
pub fn parse_service(text: &str) -> Result<ServiceAddr, String> {
    let (addr, protocol) = match text.rsplit_once('/') {
        Some((addr, "tcp")) => (addr, Protocol::Tcp),
        Some((addr, "udp")) => (addr, Protocol::Udp),
        Some((_, other)) => {
            return Err(format!(
                "service `{text}`: unknown protocol `{other}` (expected tcp or udp)"
            ));
        }
        None => (text, Protocol::Tcp),
    };
    let sock: SocketAddr = addr.parse().map_err(|_| {
        format!("service `{text}`: expected VIP:PORT[/tcp|udp] (IPv6 as [VIP]:PORT)")
    })?;
    if sock.port() == 0 {
        return Err(format!("service `{text}`: port 0 is not a service port"));
    }
    Ok(ServiceAddr {
        vip: sock.ip(),
        port: sock.port(),
        protocol,
    })
}

/// `IP`, `IP:PORT`, `V6`, `[V6]:PORT`; the port defaults to `default_port`.
pub fn parse_real(text: &str, default_port: u16) -> Result<(IpAddr, u16), String> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok((ip, default_port));
    }
    let sock: SocketAddr = text
        .parse()
        .map_err(|_| format!("real `{text}`: expected IP or IP:PORT (IPv6 as [IP]:PORT)"))?;
    Ok((sock.ip(), sock.port()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services() {
        let s = parse_service("10.0.0.1:80").unwrap();
        assert_eq!(
            (s.vip.to_string(), s.port, s.protocol),
            ("10.0.0.1".into(), 80, Protocol::Tcp)
        );
        let s = parse_service("[fd00::1]:53/udp").unwrap();
        assert_eq!(
            (s.vip.to_string(), s.port, s.protocol),
            ("fd00::1".into(), 53, Protocol::Udp)
        );
        assert_eq!(
            parse_service(&s.to_string()).unwrap(),
            s,
            "Display parses back"
        );
        assert!(
            parse_service("10.0.0.1:80/sctp")
                .unwrap_err()
                .contains("sctp")
        );
        assert!(parse_service("10.0.0.1").unwrap_err().contains("VIP:PORT"));
        assert!(parse_service("10.0.0.1:0").unwrap_err().contains("port 0"));
    }

    #[test]
    fn reals() {
        assert_eq!(
            parse_real("10.0.0.2", 80).unwrap(),
            ("10.0.0.2".parse().unwrap(), 80)
        );
        assert_eq!(parse_real("10.0.0.2:8080", 80).unwrap().1, 8080);
        assert_eq!(parse_real("fd00::2", 80).unwrap().1, 80);
        assert_eq!(parse_real("[fd00::2]:81", 80).unwrap().1, 81);
        assert!(parse_real("nope", 80).is_err());
    }
}
