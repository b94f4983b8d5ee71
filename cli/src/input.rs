//! Query vectors from the command line: a JSON array, or a `.npy` file.

use crate::{io_failure, usage, Failure};
use std::path::Path;

/// A JSON array of numbers.
pub fn json_vector(text: &str) -> Result<Vec<f64>, Failure> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        usage(format!(
            "--vector is not JSON ({e}); give an array like [0.1, 0.2]"
        ))
    })?;
    let items = v
        .as_array()
        .ok_or_else(|| usage("--vector must be a JSON array of numbers"))?;
    items
        .iter()
        .enumerate()
        .map(|(i, x)| {
            x.as_f64()
                .ok_or_else(|| usage(format!("--vector component {i} is not a number: {x}")))
        })
        .collect()
}

/// The first row of a `.npy` file of little-endian float32 or float64 (1-D or 2-D, C order).
pub fn npy_vector(path: &Path) -> Result<Vec<f64>, Failure> {
    let bytes = std::fs::read(path).map_err(|e| io_failure("reading", path, &e))?;
    parse_npy(&bytes).map_err(|why| usage(format!("{}: {why}", path.display())))
}

fn parse_npy(b: &[u8]) -> Result<Vec<f64>, String> {
    if b.get(..6) != Some(&b"\x93NUMPY"[..]) {
        return Err("not a .npy file".into());
    }
    let major = *b.get(6).ok_or("truncated .npy header")?;
    let (hlen, start) = match major {
        1 => (
            usize::from(u16::from_le_bytes([
                *b.get(8).ok_or("truncated")?,
                *b.get(9).ok_or("truncated")?,
            ])),
            10,
        ),
        2 | 3 => {
            let n: [u8; 4] = b
                .get(8..12)
                .and_then(|s| s.try_into().ok())
                .ok_or("truncated .npy header")?;
            (u32::from_le_bytes(n) as usize, 12)
        }
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let header = b
        .get(start..start + hlen)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or("truncated .npy header")?;
    let data = b.get(start + hlen..).unwrap_or_default();
    if header.contains("'fortran_order': True") {
        return Err(
            "Fortran-order arrays are not supported; save with np.save(a) of a C-order array"
                .into(),
        );
    }
    let width = if header.contains("'<f4'") {
        4
    } else if header.contains("'<f8'") {
        8
    } else {
        return Err("the array must be little-endian float32 or float64".into());
    };
    let shape = header
        .split("'shape':")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .ok_or("no shape in the .npy header")?;
    let dims: Vec<usize> = shape
        .trim_start_matches([' ', '('])
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| format!("bad shape {shape:?}"))
        })
        .collect::<Result<_, _>>()?;
    let row = match dims.as_slice() {
        [n] | [1, n] => *n,
        [_, n] => *n,
        _ => return Err(format!("expected a 1-D or 2-D array, found shape {dims:?}")),
    };
    let raw = data
        .get(..row * width)
        .ok_or("the .npy file holds less data than its shape says")?;
    Ok(raw
        .chunks_exact(width)
        .map(|c| match c {
            [a, b, c, d] => f64::from(f32::from_le_bytes([*a, *b, *c, *d])),
            _ => {
                let mut w = [0u8; 8];
                w.copy_from_slice(c);
                f64::from_le_bytes(w)
            }
        })
        .collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::parse_npy;

    fn npy(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
        let mut h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        while !(10 + h.len() + 1).is_multiple_of(64) {
            h.push(' ');
        }
        h.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(h.len() as u16).to_le_bytes());
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn float32_and_float64_rows() {
        let d: Vec<u8> = [0.5f32, -1.25]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        assert_eq!(
            parse_npy(&npy("<f4", "(2,)", &d)).unwrap(),
            vec![0.5, -1.25]
        );
        let d: Vec<u8> = [1.0f64, 2.0, 3.0, 4.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        assert_eq!(
            parse_npy(&npy("<f8", "(2, 2)", &d)).unwrap(),
            vec![1.0, 2.0]
        );
        assert!(parse_npy(&npy("<i4", "(2,)", &d)).is_err());
        assert!(parse_npy(&npy("<f8", "(9,)", &d)).is_err());
        assert!(parse_npy(b"not numpy").is_err());
    }
}
