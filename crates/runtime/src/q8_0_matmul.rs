//! `x @ W^T` for Q8_0 weights on AVX-512 VNNI, with the input quantized per 32 values (Q8_0,
//! as llama.cpp does for Q8_0 weights).
//!
//! Why not candle's kernel: for Q8_0 weights whose input width is not a multiple of 256
//! (SmolLM2's 576), candle 0.11 computes one dot product per (input row, output column):
//! compute-bound, ~2.3x more CPU than a tiled kernel, and batching gains nothing. Its tiled
//! VNNI kernel takes only multiples of 256 and quantizes the input per 256 values, which on
//! SmolLM2 moves first-token logprobs by up to 0.7 nats away from llama.cpp's.
//!
//! Layout: the weight rows are packed in tiles of 16 output rows x 32 input values, stored
//! `[4-value group][row][4 bytes]` and offset by +128 (unsigned), so that one `vpdpbusd`
//! multiplies 4 input values into 16 outputs at once; the offset is taken back out with the
//! input block's sum. One work unit is one 16-column tile for up to 4 input rows: each weight
//! load serves every row of the unit. Per output value the accumulation order is fixed (block
//! by block), so results do not depend on the batch or on the number of threads.

use candle_core::quantized::{GgmlDType, QTensor};

use crate::parallel;

const BLOCK: usize = 32;
const TILE_ROWS: usize = 16;
/// Input rows per work unit (accumulators in registers: 3 per row).
const UNIT_ROWS: usize = 4;
/// Bytes of one Q8_0 block: f16 scale, then 32 signed values.
const BLOCK_BYTES: usize = 2 + BLOCK;

/// 16 weight rows x 32 input values.
#[repr(C, align(64))]
struct Tile {
    /// `[group of 4 values][row][4]`, each value + 128.
    qs: [u8; BLOCK * TILE_ROWS],
    /// Scale of each row's block.
    d: [f32; TILE_ROWS],
}

/// A Q8_0 matrix `n x k` packed for [`PackedQ8_0::matmul`].
pub(crate) struct PackedQ8_0 {
    /// `[n / 16][k / 32]` tiles.
    tiles: Vec<Tile>,
    n: usize,
    k: usize,
}

/// The input quantized per 32 values.
struct QuantizedRows {
    qs: Vec<i8>,
    d: Vec<f32>,
    /// 128 x the sum of each block's values (the weights' offset times the input).
    offset: Vec<i32>,
}

impl PackedQ8_0 {
    /// The packed form of `weight`, where this kernel applies: a Q8_0 matrix with a multiple
    /// of 16 rows on a CPU with AVX-512 VNNI. `None` elsewhere (candle's kernel then runs).
    pub fn new(weight: &QTensor) -> candle_core::Result<Option<PackedQ8_0>> {
        let (n, k) = weight.shape().dims2()?;
        if weight.dtype() != GgmlDType::Q8_0
            || !n.is_multiple_of(TILE_ROWS)
            || !k.is_multiple_of(BLOCK)
            || !cpu_supported()
        {
            return Ok(None);
        }
        let data = weight.data()?;
        let kb = k / BLOCK;
        let block = |row: usize, b: usize| {
            let at = (row * kb + b) * BLOCK_BYTES;
            &data[at..at + BLOCK_BYTES]
        };
        let mut tiles = Vec::with_capacity(n / TILE_ROWS * kb);
        for t in 0..n / TILE_ROWS {
            for b in 0..kb {
                let mut tile = Tile {
                    qs: [0; BLOCK * TILE_ROWS],
                    d: [0.0; TILE_ROWS],
                };
                for r in 0..TILE_ROWS {
                    let src = block(t * TILE_ROWS + r, b);
                    tile.d[r] = half::f16::from_le_bytes([src[0], src[1]]).to_f32();
                    for (i, &q) in src[2..].iter().enumerate() {
                        let (group, byte) = (i / 4, i % 4);
                        tile.qs[(group * TILE_ROWS + r) * 4 + byte] = (q as i8 as i16 + 128) as u8;
                    }
                }
                tiles.push(tile);
            }
        }
        Ok(Some(PackedQ8_0 { tiles, n, k }))
    }

    /// `x` is `rows x k`, row-major; returns `rows x n`.
    pub fn matmul(&self, x: &[f32], rows: usize) -> Vec<f32> {
        let (n, k) = (self.n, self.k);
        assert_eq!(x.len(), rows * k, "input is rows x {k}");
        let kb = k / BLOCK;
        let input = quantize(x, rows, k);
        let mut out = vec![0f32; rows * n];
        let units_per_tile = rows.div_ceil(UNIT_ROWS);
        let n_units = n / TILE_ROWS * units_per_tile;
        let out_at = out.as_mut_ptr() as usize;
        let unit = |u: usize| {
            let (t, row0) = (u / units_per_tile, (u % units_per_tile) * UNIT_ROWS);
            let tiles = &self.tiles[t * kb..(t + 1) * kb];
            let unit_rows = (rows - row0).min(UNIT_ROWS);
            // SAFETY: `cpu_supported()` held when this matrix was packed (`new`); every unit
            // writes only its own rows' 16 columns `t * 16..`, inside `out` (rows x n).
            unsafe {
                let dst = (out_at as *mut f32).add(row0 * n + t * TILE_ROWS);
                match unit_rows {
                    1 => kernel::unit::<1>(tiles, &input, row0, kb, dst, n),
                    2 => kernel::unit::<2>(tiles, &input, row0, kb, dst, n),
                    3 => kernel::unit::<3>(tiles, &input, row0, kb, dst, n),
                    _ => kernel::unit::<4>(tiles, &input, row0, kb, dst, n),
                }
            }
        };
        candle_core::utils::barrier_pool().execute_chunked(n_units, |range| range.for_each(unit));
        out
    }
}

fn cpu_supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Quantize each row's blocks of 32 to i8 with one scale each (as llama.cpp's
/// `quantize_row_q8_0`, with the scale kept in f32), rows in parallel.
fn quantize(x: &[f32], rows: usize, k: usize) -> QuantizedRows {
    let kb = k / BLOCK;
    let mut q = QuantizedRows {
        qs: vec![0; rows * k],
        d: vec![0.0; rows * kb],
        offset: vec![0; rows * kb],
    };
    let mut work: Vec<(&mut [i8], &mut [f32], &mut [i32])> =
        q.qs.chunks_exact_mut(k)
            .zip(q.d.chunks_exact_mut(kb))
            .zip(q.offset.chunks_exact_mut(kb))
            .map(|((qs, d), offset)| (qs, d, offset))
            .collect();
    parallel::for_each_mut(&mut work, |r, (qs, d, offset)| {
        let blocks = x[r * k..(r + 1) * k].chunks_exact(BLOCK);
        for (b, (src, dst)) in blocks.zip(qs.chunks_exact_mut(BLOCK)).enumerate() {
            let amax = src.iter().fold(0f32, |m, v| m.max(v.abs()));
            let scale = amax / 127.0;
            let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
            for (o, &v) in dst.iter_mut().zip(src) {
                *o = (v * inv).round() as i8;
            }
            d[b] = scale;
            offset[b] = 128 * dst.iter().map(|&v| v as i32).sum::<i32>();
        }
    });
    q
}

#[cfg(target_arch = "x86_64")]
mod kernel {
    use super::{BLOCK, QuantizedRows, TILE_ROWS, Tile};
    use std::arch::x86_64::*;

    /// `R` input rows from `row0` against one column tile (`tiles`: its `kb` blocks), written
    /// to `dst` (row stride `n`).
    ///
    /// # Safety
    /// The CPU has AVX-512 F, BW and VNNI; `dst` points at `R` rows of `n` floats with at least
    /// 16 writable from each row's start.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn unit<const R: usize>(
        tiles: &[Tile],
        input: &QuantizedRows,
        row0: usize,
        kb: usize,
        dst: *mut f32,
        n: usize,
    ) {
        // SAFETY: the tile loads are aligned (`Tile` is 64-byte aligned, offsets are multiples
        // of 64) and in bounds; input reads stay inside row `row0 + r` (< rows); the caller
        // guarantees the CPU features and `dst`.
        unsafe {
            let k = kb * BLOCK;
            let mut acc = [_mm512_setzero_ps(); R];
            for (b, tile) in tiles.iter().enumerate() {
                // Two integer accumulators per row: two dependency chains in flight.
                let mut even = [_mm512_setzero_si512(); R];
                let mut odd = [_mm512_setzero_si512(); R];
                for g in (0..BLOCK / 4).step_by(2) {
                    let w0 = _mm512_load_si512(tile.qs.as_ptr().add(g * TILE_ROWS * 4).cast());
                    let w1 =
                        _mm512_load_si512(tile.qs.as_ptr().add((g + 1) * TILE_ROWS * 4).cast());
                    for r in 0..R {
                        let a = input.qs.as_ptr().add((row0 + r) * k + b * BLOCK + g * 4);
                        let a0 = _mm512_set1_epi32(a.cast::<i32>().read_unaligned());
                        let a1 = _mm512_set1_epi32(a.add(4).cast::<i32>().read_unaligned());
                        even[r] = _mm512_dpbusd_epi32(even[r], w0, a0);
                        odd[r] = _mm512_dpbusd_epi32(odd[r], w1, a1);
                    }
                }
                let dw = _mm512_load_ps(tile.d.as_ptr());
                for r in 0..R {
                    let at = (row0 + r) * kb + b;
                    let sum = _mm512_sub_epi32(
                        _mm512_add_epi32(even[r], odd[r]),
                        _mm512_set1_epi32(input.offset[at]),
                    );
                    let scale = _mm512_mul_ps(dw, _mm512_set1_ps(input.d[at]));
                    acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), scale, acc[r]);
                }
            }
            for (r, a) in acc.iter().enumerate() {
                _mm512_storeu_ps(dst.add(r * n), *a);
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod kernel {
    use super::{QuantizedRows, Tile};

    /// Never called: `PackedQ8_0::new` packs nothing off x86-64.
    pub(super) unsafe fn unit<const R: usize>(
        _: &[Tile],
        _: &QuantizedRows,
        _: usize,
        _: usize,
        _: *mut f32,
        _: usize,
    ) {
        unreachable!("the Q8_0 VNNI kernel runs on x86-64 only")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Module, Tensor};

    /// Against candle's own Q8_0 product and the exact f32 product of the dequantized weights.
    #[test]
    fn matches_candle_and_the_dequantized_product() {
        let (n, k, rows) = (48, 576, 5);
        let values = |len: usize, seed: f32| -> Vec<f32> {
            (0..len)
                .map(|i| {
                    ((i as f32 * 0.37 + seed).sin() * 3.0) * if i % 97 == 0 { 8.0 } else { 1.0 }
                })
                .collect()
        };
        let w = Tensor::from_vec(values(n * k, 0.5), (n, k), &Device::Cpu).unwrap();
        let qw = QTensor::quantize(&w, GgmlDType::Q8_0).unwrap();
        let Some(packed) = PackedQ8_0::new(&qw).unwrap() else {
            println!("SKIP: this CPU has no AVX-512 VNNI; candle's kernel runs instead");
            return;
        };
        let x = values(rows * k, 1.5);
        let ours = packed.matmul(&x, rows);
        let xt = Tensor::from_vec(x.clone(), (rows, k), &Device::Cpu).unwrap();
        let dequantized = qw.dequantize(&Device::Cpu).unwrap();
        let candle = candle_core::quantized::QMatMul::from_qtensor(qw)
            .unwrap()
            .forward(&xt)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let exact = xt
            .matmul(&dequantized.t().unwrap())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let scale = exact.iter().fold(0f32, |m, v| m.max(v.abs()));
        for ((o, c), e) in ours.iter().zip(&candle).zip(&exact) {
            assert!((o - e).abs() < 2e-3 * scale, "ours {o} exact {e}");
            assert!((o - c).abs() < 2e-3 * scale, "ours {o} candle {c}");
        }
        // Row by row equals all rows at once, bit for bit (batched = unbatched).
        for r in 0..rows {
            let alone = packed.matmul(&x[r * k..(r + 1) * k], 1);
            assert_eq!(alone, ours[r * n..(r + 1) * n]);
        }
    }
}
