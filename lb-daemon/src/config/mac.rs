//! MAC addresses as the file writes them (a real's `mac`, a service's
//! `fallback_mac`).

/// Parses a MAC written as six colon-separated pairs of hex digits
/// (`"02:00:00:00:00:11"`, either case). Multicast/broadcast and all-zero
/// addresses are refused: neither can be a real's NIC.
pub fn parse_mac(text: &str) -> Result<[u8; 6], String> {
    let syntax = || {
        format!("{text:?} is not a MAC address (expected six hex pairs like \"02:00:00:00:00:11\")")
    };
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        let part = parts.next().ok_or_else(syntax)?;
        if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(syntax());
        }
        *byte = u8::from_str_radix(part, 16).map_err(|_| syntax())?;
    }
    if parts.next().is_some() {
        return Err(syntax());
    }
    if mac == [0; 6] {
        return Err(format!("{text:?} is the all-zero MAC address"));
    }
    if mac[0] & 1 == 1 {
        return Err(format!(
            "{text:?} is a multicast/broadcast MAC address, not a server's"
        ));
    }
    Ok(mac)
}

/// Writes a MAC the way [`parse_mac`] reads it (lower case).
#[must_use]
pub fn format_mac(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|byte| format!("{byte:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs() {
        assert_eq!(parse_mac("02:00:00:00:00:1A"), Ok([2, 0, 0, 0, 0, 0x1a]));
        assert_eq!(format_mac([2, 0, 0, 0, 0, 0x1a]), "02:00:00:00:00:1a");
        for bad in [
            "",
            "02:00:00:00:00",
            "02:00:00:00:00:11:22",
            "2:0:0:0:0:1",
            "02-00-00-00-00-11",
            "02:00:00:00:00:zz",
            "+2:00:00:00:00:11",
        ] {
            assert!(
                parse_mac(bad).unwrap_err().contains("not a MAC address"),
                "{bad}"
            );
        }
        assert!(
            parse_mac("00:00:00:00:00:00")
                .unwrap_err()
                .contains("all-zero")
        );
        assert!(
            parse_mac("ff:ff:ff:ff:ff:ff")
                .unwrap_err()
                .contains("multicast")
        );
        assert!(
            parse_mac("01:00:5e:00:00:01")
                .unwrap_err()
                .contains("multicast")
        );
    }
}
