//! A cached answer, and its form in Redis: a version byte, a flags byte, the metadata as
//! length-prefixed JSON, then the payload (LZ4-compressed when large and worth it).

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// One stored answer and what it cost to compute: a hit spares that cost again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The function's answer (a success: errors are never stored).
    #[serde(skip)]
    pub payload: Bytes,
    /// The alias or version that computed it.
    pub target: String,
    /// `X-Amz-Executed-Version` of that invocation.
    pub executed_version: Option<String>,
    /// Its billed duration and memory: the dollars a hit saves.
    pub billed_ms: u64,
    pub memory_mb: u32,
}

impl Entry {
    /// Bytes held in the local tier: the answer plus a fixed allowance for the key and the
    /// metadata.
    pub fn weight(&self) -> u32 {
        let meta = 64 + self.target.len() + self.executed_version.as_ref().map_or(0, String::len);
        u32::try_from(self.payload.len() + meta).unwrap_or(u32::MAX)
    }

    /// The dollars of the invocation a hit spares (x86 on-demand prices: the architecture is
    /// not in a target's configuration as read today).
    pub fn dollars(&self) -> f64 {
        use crate::policy::cost::{bill, Prices, Usage};
        let prices = Prices::us_east_1(crate::platform::spec::Architecture::X86_64);
        bill(
            &Usage {
                requests: 1,
                on_demand_gb_s: crate::policy::cost::gb_s(
                    std::time::Duration::from_millis(self.billed_ms),
                    self.memory_mb,
                ),
                ..Usage::default()
            },
            &prices,
        )
    }
}

const FORMAT: u8 = 1;
const COMPRESSED: u8 = 1;

/// Why a stored value could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("stored value too short or of unknown format")]
    Format,
    #[error("stored metadata unreadable: {0}")]
    Meta(#[from] serde_json::Error),
    #[error("stored payload does not decompress: {0}")]
    Payload(#[from] lz4_flex::block::DecompressError),
}

/// The bytes stored in Redis for `entry`.
pub fn encode(entry: &Entry, compress_above: usize) -> Vec<u8> {
    let meta = serde_json::to_vec(entry).expect("the metadata serialises");
    let compressed = (entry.payload.len() > compress_above)
        .then(|| lz4_flex::compress_prepend_size(&entry.payload))
        .filter(|c| c.len() < entry.payload.len());
    let payload = compressed.as_deref().unwrap_or(&entry.payload);
    let mut out = Vec::with_capacity(6 + meta.len() + payload.len());
    out.push(FORMAT);
    out.push(if compressed.is_some() { COMPRESSED } else { 0 });
    out.extend_from_slice(&(meta.len() as u32).to_be_bytes());
    out.extend_from_slice(&meta);
    out.extend_from_slice(payload);
    out
}

/// Reads back what [`encode`] wrote.
pub fn decode(bytes: &[u8]) -> Result<Entry, DecodeError> {
    let [format, flags, a, b, c, d, rest @ ..] = bytes else {
        return Err(DecodeError::Format);
    };
    if *format != FORMAT {
        return Err(DecodeError::Format);
    }
    let len = u32::from_be_bytes([*a, *b, *c, *d]) as usize;
    if rest.len() < len {
        return Err(DecodeError::Format);
    }
    let (meta, payload) = rest.split_at(len);
    let mut entry: Entry = serde_json::from_slice(meta)?;
    entry.payload = if flags & COMPRESSED != 0 {
        Bytes::from(lz4_flex::decompress_size_prepended(payload)?)
    } else {
        Bytes::copy_from_slice(payload)
    };
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(payload: Vec<u8>) -> Entry {
        Entry {
            payload: payload.into(),
            target: "live".into(),
            executed_version: Some("3".into()),
            billed_ms: 120,
            memory_mb: 2048,
        }
    }

    #[test]
    fn small_and_large_answers_read_back_as_stored() {
        let small = entry(br#"{"label":"positive"}"#.to_vec());
        let stored = encode(&small, 1024);
        assert_eq!(stored[1], 0, "small answers are stored as they are");
        assert_eq!(decode(&stored).unwrap(), small);

        let large = entry(format!(r#"{{"text":"{}"}}"#, "token ".repeat(2000)).into_bytes());
        let stored = encode(&large, 1024);
        assert_eq!(stored[1], COMPRESSED);
        assert!(
            stored.len() < large.payload.len() / 4,
            "{} bytes",
            stored.len()
        );
        assert_eq!(decode(&stored).unwrap(), large);
    }

    #[test]
    fn incompressible_answers_are_stored_plain() {
        use rand::{RngCore, SeedableRng};
        let mut noise = vec![0u8; 4096];
        rand_chacha::ChaCha8Rng::seed_from_u64(1).fill_bytes(&mut noise);
        let stored = encode(&entry(noise.clone()), 1024);
        assert_eq!(stored[1], 0);
        assert_eq!(decode(&stored).unwrap().payload, noise);
    }

    #[test]
    fn damaged_values_are_errors_not_answers() {
        let stored = encode(&entry(b"{}".to_vec()), 1024);
        assert!(matches!(decode(&stored[..3]), Err(DecodeError::Format)));
        let mut other = stored.clone();
        other[0] = 9;
        assert!(matches!(decode(&other), Err(DecodeError::Format)));
        let mut meta = stored.clone();
        meta[6] = b'!';
        assert!(matches!(decode(&meta), Err(DecodeError::Meta(_))));
    }

    #[test]
    fn a_hit_saves_the_invocation_it_repeats() {
        // 2 GB for 120 ms: 0.24 GB-s at $0.0000166667, plus the request.
        let dollars = entry(vec![]).dollars();
        assert!(
            (dollars - (0.24 * 0.000_016_666_7 + 0.2e-6)).abs() < 1e-12,
            "{dollars}"
        );
    }
}
