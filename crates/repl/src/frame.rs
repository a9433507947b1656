//! The framing of one replicated transaction, on disk (the log) and on the wire
//! (pull streams) alike.
//!
//! Layout, little-endian:
//! `magic "QMTX" | version u8 | kind u8 | origin u64 | seq u64 | time u64 | len u32 | crc32 u32 | payload[len]`.
//! The checksum covers everything before it except the magic, and the payload; a frame
//! whose checksum, magic or version does not match is refused whole.

use crate::stamp::{HlcTime, OriginId, Stamp};

pub const MAGIC: [u8; 4] = *b"QMTX";
pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 4 + 1 + 1 + 8 + 8 + 8 + 4 + 4;
/// Upper bound of one payload, so that a corrupt length cannot make us allocate wildly.
pub const MAX_PAYLOAD: usize = 1 << 31;

/// What a transaction carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum EntryKind {
    /// Quad inserts and deletes.
    Data = 1,
    /// A new cluster configuration.
    Config = 2,
    /// A heartbeat on a pull stream: the sender's clock and progress. Never logged.
    Heartbeat = 3,
    /// Records of a book kept beside the quads (namespaces; users, roles and grants),
    /// each with its stamp: newest stamp wins per key.
    Meta = 4,
}

impl EntryKind {
    fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(EntryKind::Data),
            2 => Some(EntryKind::Config),
            3 => Some(EntryKind::Heartbeat),
            4 => Some(EntryKind::Meta),
            _ => None,
        }
    }
}

/// One transaction as it is logged and shipped: who, which number, when, what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub kind: EntryKind,
    pub origin: OriginId,
    pub seq: u64,
    pub time: HlcTime,
    pub payload: Vec<u8>,
}

impl Entry {
    pub fn stamp(&self) -> Stamp {
        Stamp::new(self.time, self.origin)
    }

    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.payload.len()
    }

    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        out.extend_from_slice(&MAGIC);
        let start = out.len();
        out.push(VERSION);
        out.push(self.kind as u8);
        out.extend_from_slice(&self.origin.0.to_le_bytes());
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&self.time.0.to_le_bytes());
        out.extend_from_slice(&(self.payload.len() as u32).to_le_bytes());
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&out[start..]);
        hasher.update(&self.payload);
        out.extend_from_slice(&hasher.finalize().to_le_bytes());
        out.extend_from_slice(&self.payload);
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame does not start with the quadmesh magic")]
    BadMagic,
    #[error("frame version {0} is not supported (this build speaks {VERSION})")]
    UnsupportedVersion(u8),
    #[error("unknown entry kind {0}")]
    UnknownKind(u8),
    #[error("frame payload length {0} exceeds the limit")]
    TooLarge(usize),
    #[error("frame checksum mismatch")]
    BadChecksum,
}

/// Outcome of looking for a frame at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A whole, valid frame, and how many bytes it took.
    Frame(Entry, usize),
    /// The buffer holds the start of a frame; this many bytes are needed in all.
    Incomplete(usize),
}

/// Decodes the frame at the start of `buf`.
pub fn decode(buf: &[u8]) -> Result<Decoded, FrameError> {
    if buf.len() < HEADER_LEN {
        if buf.len() >= 4 && buf[..4] != MAGIC {
            return Err(FrameError::BadMagic);
        }
        return Ok(Decoded::Incomplete(HEADER_LEN));
    }
    if buf[..4] != MAGIC {
        return Err(FrameError::BadMagic);
    }
    let version = buf[4];
    if version != VERSION {
        return Err(FrameError::UnsupportedVersion(version));
    }
    let kind = EntryKind::from_u8(buf[5]).ok_or(FrameError::UnknownKind(buf[5]))?;
    let u64_at = |i: usize| u64::from_le_bytes(buf[i..i + 8].try_into().expect("8 bytes"));
    let origin = OriginId(u64_at(6));
    let seq = u64_at(14);
    let time = HlcTime(u64_at(22));
    let len = u32::from_le_bytes(buf[30..34].try_into().expect("4 bytes")) as usize;
    if len > MAX_PAYLOAD {
        return Err(FrameError::TooLarge(len));
    }
    let crc = u32::from_le_bytes(buf[34..38].try_into().expect("4 bytes"));
    let total = HEADER_LEN + len;
    if buf.len() < total {
        return Ok(Decoded::Incomplete(total));
    }
    let payload = &buf[HEADER_LEN..total];
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&buf[4..34]);
    hasher.update(payload);
    if hasher.finalize() != crc {
        return Err(FrameError::BadChecksum);
    }
    Ok(Decoded::Frame(
        Entry {
            kind,
            origin,
            seq,
            time,
            payload: payload.to_vec(),
        },
        total,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            kind: EntryKind::Data,
            origin: OriginId(42),
            seq: 7,
            time: HlcTime::from_parts(1000, 3),
            payload: b"<a> <b> <c> .\n".to_vec(),
        }
    }

    #[test]
    fn a_frame_round_trips() {
        let bytes = entry().encode();
        assert_eq!(
            decode(&bytes).unwrap(),
            Decoded::Frame(entry(), bytes.len())
        );
    }

    #[test]
    fn a_truncated_frame_asks_for_more() {
        let bytes = entry().encode();
        assert_eq!(
            decode(&bytes[..bytes.len() - 1]).unwrap(),
            Decoded::Incomplete(bytes.len())
        );
        assert_eq!(
            decode(&bytes[..10]).unwrap(),
            Decoded::Incomplete(HEADER_LEN)
        );
    }

    #[test]
    fn any_flipped_byte_is_detected() {
        let bytes = entry().encode();
        for i in 0..bytes.len() {
            let mut corrupt = bytes.clone();
            corrupt[i] ^= 0x01;
            match decode(&corrupt) {
                Err(_) => {}
                // A flipped length bit can make the frame look longer: still never accepted.
                Ok(Decoded::Incomplete(_)) => {}
                Ok(Decoded::Frame(..)) => panic!("byte {i} flipped and the frame was accepted"),
            }
        }
    }
}
