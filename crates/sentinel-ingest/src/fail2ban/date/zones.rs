//! Time zones as fail2ban reads them in dates: numeric offsets (`+0300`, `-04:30`, `+03`), `Z`/`UTC`/`GMT`, and
//! its fixed table of abbreviations (`CEST`, `PDT`, … with no daylight-saving switch), optionally followed by an
//! offset (`CET+0100`). An unknown abbreviation gives no offset, so the date has no time.

/// Zone text (`Z`, `UTC`, `+0300`, `-04:00`, `+03`, `CEST`, `CET+0100`) → seconds east of UTC, as fail2ban's
/// `zone2offset` reads it; `None` for an unknown abbreviation.
pub(super) fn zone_offset_secs(z: &str) -> Option<i32> {
    if matches!(z, "Z" | "UTC" | "GMT") {
        return Some(0);
    }
    let split = z.find(['+', '-']).unwrap_or(z.len());
    let (abbr, num) = z.split_at(split);
    let base = if abbr.is_empty() {
        0
    } else {
        abbr_offset_minutes(abbr)?
    };
    let extra = if num.is_empty() {
        0
    } else {
        let sign = if num.starts_with('-') { -1 } else { 1 };
        let digits: String = num.chars().filter(char::is_ascii_digit).collect();
        let h: i32 = digits.get(..2)?.parse().ok()?;
        let m: i32 = match digits.get(2..4) {
            Some(m) => m.parse().ok()?,
            None => 0,
        };
        sign * (h * 60 + m)
    };
    Some((base + extra) * 60)
}

/// fail2ban's fixed table of zone abbreviations (minutes east of UTC; no daylight-saving switch).
fn abbr_offset_minutes(abbr: &str) -> Option<i32> {
    const TABLE: &[(i32, &str)] = &[
        (-720, "Y"),
        (-660, "X NUT SST"),
        (-600, "W CKT HAST HST TAHT TKT"),
        (-540, "V AKST GAMT GIT HADT HNY"),
        (-480, "U AKDT CIST HAY HNP PST PT"),
        (-420, "T HAP HNR MST PDT"),
        (-360, "S CST EAST GALT HAR HNC MDT"),
        (-300, "R CDT COT EASST ECT EST ET HAC HNE PET"),
        (-240, "Q AST BOT CLT COST EDT FKT GYT HAE HNA PYT"),
        (
            -180,
            "P ADT ART BRT CLST FKST GFT HAA PMST PYST SRT UYT WGT",
        ),
        (-120, "O BRST FNT PMDT UYST WGST"),
        (-60, "N AZOT CVT EGT"),
        (0, "Z EGST GMT UTC WET WT"),
        (60, "A CET DFT WAT WEDT WEST"),
        (120, "B CAT CEDT CEST EET SAST WAST"),
        (180, "C EAT EEDT EEST IDT MSK"),
        (240, "D AMT AZT GET GST KUYT MSD MUT RET SAMT SCT"),
        (
            300,
            "E AMST AQTT AZST HMT MAWT MVT PKT TFT TJT TMT UZT YEKT",
        ),
        (360, "F ALMT BIOT BTT IOT KGT NOVT OMST YEKST"),
        (420, "G CXT DAVT HOVT ICT KRAT NOVST OMSST THA WIB"),
        (
            480,
            "H ACT AWST BDT BNT CAST HKT IRKT KRAST MYT PHT SGT ULAT WITA WST",
        ),
        (540, "I AWDT IRKST JST KST PWT TLT WDT WIT YAKT"),
        (600, "K AEST ChST PGT VLAT YAKST YAPT"),
        (660, "L AEDT LHDT MAGT NCT PONT SBT VLAST VUT"),
        (
            720,
            "M ANAST ANAT FJT GILT MAGST MHT NZST PETST PETT TVT WFT",
        ),
        (780, "FJST NZDT"),
        (690, "NFT"),
        (630, "ACDT LHST"),
        (570, "ACST"),
        (390, "CCT MMT"),
        (345, "NPT"),
        (330, "SLT"),
        (270, "AFT IRDT"),
        (210, "IRST"),
        (-150, "HAT NDT"),
        (-210, "HNT NST NT"),
        (-270, "HLV VET"),
        (-570, "MART MIT"),
    ];
    TABLE
        .iter()
        .find(|(_, names)| names.split(' ').any(|n| n == abbr))
        .map(|(m, _)| *m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_read_like_fail2ban() {
        assert_eq!(zone_offset_secs("+0300"), Some(10_800));
        assert_eq!(zone_offset_secs("-04:30"), Some(-16_200));
        assert_eq!(zone_offset_secs("+03"), Some(10_800));
        assert_eq!(zone_offset_secs("CEST"), Some(7200));
        assert_eq!(zone_offset_secs("CET+0100"), Some(7200));
        assert_eq!(zone_offset_secs("PDT"), Some(-25_200));
        assert_eq!(zone_offset_secs("NPT"), Some(20_700));
        assert_eq!(zone_offset_secs("XYZ"), None);
    }
}
