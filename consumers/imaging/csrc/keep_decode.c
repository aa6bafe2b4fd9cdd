/*
 * Scaled JPEG decode to Y/Cb/Cr planes (libjpeg API, raw data out) that
 * skips the inverse DCT of block columns outside a horizontal keep range.
 *
 * A cover crop of a landscape photo keeps the centre columns only (3000 of
 * 4000 for a square), and the IDCT of the rest is wasted work. TurboJPEG's
 * cropping only covers packed-pixel output, and libjpeg's jpeg_crop_scanline
 * refuses raw data output, so we wrap the per-component IDCT functions
 * libjpeg chose instead. Huffman decoding of every block still happens (it is
 * sequential); skipped blocks are filled with mid-grey so the planes stay
 * deterministic.
 *
 * Only single-scan 8-bit YCbCr JPEGs take this path; the caller falls back to
 * TurboJPEG for everything else (return value SY_UNSUPPORTED).
 */
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include "jpeglib.h"

#define SY_OK 0
#define SY_ERROR 1
#define SY_UNSUPPORTED 2

typedef void (*sy_idct_fn)(j_decompress_ptr, jpeg_component_info *, JCOEFPTR,
                           JSAMPARRAY, JDIMENSION);

/* The leading members of libjpeg-turbo's private struct jpeg_inverse_dct
 * (jpegint.h): the IDCT chosen per component for 8-bit samples. A private
 * struct may change in any release, so only the versions whose jpegint.h
 * was checked against this mirror compile; add a version here only after
 * comparing its struct jpeg_inverse_dct (and the 16-bit dequantisation table
 * layout sy_idct_keep_3x3 relies on) with this file. */
#if !defined(LIBJPEG_TURBO_VERSION_NUMBER)
#error "keep_decode.c: jpeglib.h is not libjpeg-turbo's (no LIBJPEG_TURBO_VERSION_NUMBER)"
#elif LIBJPEG_TURBO_VERSION_NUMBER != 3001000
#error "keep_decode.c mirrors a private libjpeg-turbo struct checked for 3.1.0 only; check jpegint.h of this version before allowing it"
#endif
struct jpeg_inverse_dct {
  void (*start_pass)(j_decompress_ptr cinfo);
  sy_idct_fn inverse_DCT[MAX_COMPONENTS];
};

typedef struct {
  struct jpeg_error_mgr pub; /* first, so cinfo->err leads here */
  jmp_buf jump;
  char *msg;
  size_t msg_len;
  sy_idct_fn idct[MAX_COMPONENTS];
  JDIMENSION lo[MAX_COMPONENTS], hi[MAX_COMPONENTS];
} sy_ctx;

static void sy_error_exit(j_common_ptr cinfo) {
  sy_ctx *ctx = (sy_ctx *)cinfo->err;
  char buf[JMSG_LENGTH_MAX];
  (*cinfo->err->format_message)(cinfo, buf);
  if (ctx->msg_len > 0) {
    strncpy(ctx->msg, buf, ctx->msg_len - 1);
    ctx->msg[ctx->msg_len - 1] = '\0';
  }
  longjmp(ctx->jump, 1);
}

/* A warning (premature end of data, corrupt data) is fatal: a truncated
 * upload must be refused, not padded with grey (TurboJPEG's STOPONWARNING). */
static void sy_emit_message(j_common_ptr cinfo, int level) {
  if (level < 0) sy_error_exit(cinfo);
}

static void sy_idct_keep(j_decompress_ptr cinfo, jpeg_component_info *comp,
                         JCOEFPTR coef, JSAMPARRAY out, JDIMENSION col) {
  sy_ctx *ctx = (sy_ctx *)cinfo->err;
  int ci = comp->component_index, n = comp->DCT_scaled_size, r;
  if (col + (JDIMENSION)n <= ctx->lo[ci] || col >= ctx->hi[ci]) {
    for (r = 0; r < n; r++) memset(out[r] + col, 128, (size_t)n);
    return;
  }
  ctx->idct[ci](cinfo, comp, coef, out, col);
}

/* libjpeg-turbo's jpeg_idct_3x3 (jidctint.c, IJG licence: Copyright (C)
 * 1998-2009, Thomas G. Lane, Guido Vollbeding; same arithmetic, bit-exact
 * output), with the keep-range test folded in: at 3/8 scale, the most common
 * one for phone photos to 512 px, a second indirect call per block cost as
 * much as the skipped IDCTs saved. */
#define SY_CONST_BITS 13
#define SY_PASS1_BITS 2
#define SY_FIX_0_707106781 ((long)5793)
#define SY_FIX_1_224744871 ((long)10033)

static void sy_idct_keep_3x3(j_decompress_ptr cinfo, jpeg_component_info *comp,
                             JCOEFPTR coef, JSAMPARRAY out, JDIMENSION col) {
  sy_ctx *ctx = (sy_ctx *)cinfo->err;
  int ci = comp->component_index, ctr;
  const short *quant = (const short *)comp->dct_table;
  JSAMPLE *range_limit = cinfo->sample_range_limit + CENTERJSAMPLE;
  int ws[3 * 3];
  long tmp0, tmp2, tmp10, tmp12;
  if (col + 3 <= ctx->lo[ci] || col >= ctx->hi[ci]) {
    for (ctr = 0; ctr < 3; ctr++) {
      out[ctr][col] = 128;
      out[ctr][col + 1] = 128;
      out[ctr][col + 2] = 128;
    }
    return;
  }
  for (ctr = 0; ctr < 3; ctr++) {
    tmp0 = (long)((short)coef[DCTSIZE * 0 + ctr] * quant[DCTSIZE * 0 + ctr]);
    tmp0 = (long)((unsigned long)tmp0 << SY_CONST_BITS);
    tmp0 += 1L << (SY_CONST_BITS - SY_PASS1_BITS - 1);
    tmp2 = (long)((short)coef[DCTSIZE * 2 + ctr] * quant[DCTSIZE * 2 + ctr]);
    tmp12 = tmp2 * SY_FIX_0_707106781;
    tmp10 = tmp0 + tmp12;
    tmp2 = tmp0 - tmp12 - tmp12;
    tmp12 = (long)((short)coef[DCTSIZE * 1 + ctr] * quant[DCTSIZE * 1 + ctr]);
    tmp0 = tmp12 * SY_FIX_1_224744871;
    ws[3 * 0 + ctr] = (int)((tmp10 + tmp0) >> (SY_CONST_BITS - SY_PASS1_BITS));
    ws[3 * 2 + ctr] = (int)((tmp10 - tmp0) >> (SY_CONST_BITS - SY_PASS1_BITS));
    ws[3 * 1 + ctr] = (int)(tmp2 >> (SY_CONST_BITS - SY_PASS1_BITS));
  }
  for (ctr = 0; ctr < 3; ctr++) {
    JSAMPROW o = out[ctr] + col;
    const int *w = ws + 3 * ctr;
    tmp0 = (long)w[0] + (1L << (SY_PASS1_BITS + 2));
    tmp0 = (long)((unsigned long)tmp0 << SY_CONST_BITS);
    tmp12 = (long)w[2] * SY_FIX_0_707106781;
    tmp10 = tmp0 + tmp12;
    tmp2 = tmp0 - tmp12 - tmp12;
    tmp0 = (long)w[1] * SY_FIX_1_224744871;
    o[0] = range_limit[(int)((tmp10 + tmp0) >> (SY_CONST_BITS + SY_PASS1_BITS + 3)) & 1023];
    o[2] = range_limit[(int)((tmp10 - tmp0) >> (SY_CONST_BITS + SY_PASS1_BITS + 3)) & 1023];
    o[1] = range_limit[(int)(tmp2 >> (SY_CONST_BITS + SY_PASS1_BITS + 3)) & 1023];
  }
}

/*
 * Decodes `jpeg` at scale num/8 into three planes of the given sizes (rows
 * packed, stride = width). Only luma columns [keep_x0, keep_x1) of the scaled
 * image (and the chroma columns they map to) are guaranteed to be decoded.
 */
static int sy_decode(const unsigned char *jpeg, unsigned long len, int num,
                     int max_memory_mb, unsigned int keep_x0,
                     unsigned int keep_x1, unsigned char **planes,
                     const unsigned int *widths, const unsigned int *heights,
                     char *msg, size_t msg_len, size_t struct_size);

int sy_decode_planes_keep(const unsigned char *jpeg, unsigned long len,
                          int num, int max_memory_mb, unsigned int keep_x0,
                          unsigned int keep_x1, unsigned char **planes,
                          const unsigned int *widths,
                          const unsigned int *heights, char *msg,
                          size_t msg_len) {
  return sy_decode(jpeg, len, num, max_memory_mb, keep_x0, keep_x1, planes,
                   widths, heights, msg, msg_len,
                   sizeof(struct jpeg_decompress_struct));
}

/* For tests only: the same decode with a wrong struct size, so that
 * jpeg_CreateDecompress itself fails (its first check) and the error has to
 * land on the jump buffer armed before it. */
int sy_test_create_fails(char *msg, size_t msg_len) {
  static const unsigned char none[1] = {0};
  unsigned char *planes[3] = {0, 0, 0};
  const unsigned int sizes[3] = {0, 0, 0};
  return sy_decode(none, 1, 8, 16, 0, 0, planes, sizes, sizes, msg, msg_len,
                   sizeof(struct jpeg_decompress_struct) + 1);
}

static int sy_decode(const unsigned char *jpeg, unsigned long len, int num,
                     int max_memory_mb, unsigned int keep_x0,
                     unsigned int keep_x1, unsigned char **planes,
                     const unsigned int *widths, const unsigned int *heights,
                     char *msg, size_t msg_len, size_t struct_size) {
  struct jpeg_decompress_struct cinfo;
  sy_ctx ctx;
  JSAMPARRAY rows[3];
  JSAMPROW row_ptrs[3][2 * DCTSIZE * MAX_SAMP_FACTOR];
  JDIMENSION done[3] = {0, 0, 0};
  int ci, status = SY_OK;

  memset(&ctx, 0, sizeof(ctx));
  ctx.msg = msg;
  ctx.msg_len = msg_len;
  if (msg_len > 0) msg[0] = '\0';
  /* Zeroed first, so the error path reads nothing uninitialised however far
   * jpeg_CreateDecompress got (it fails on a version or struct-size mismatch
   * before its own memset). */
  memset(&cinfo, 0, sizeof(cinfo));
  cinfo.err = jpeg_std_error(&ctx.pub);
  ctx.pub.error_exit = sy_error_exit;
  ctx.pub.emit_message = sy_emit_message;
  /* Armed before create: an error inside jpeg_CreateDecompress (bad struct
   * size or version, out of memory) must jump somewhere valid. */
  if (setjmp(ctx.jump)) {
    jpeg_destroy_decompress(&cinfo);
    return SY_ERROR;
  }
  jpeg_CreateDecompress(&cinfo, JPEG_LIB_VERSION, struct_size);
  cinfo.mem->max_memory_to_use = (long)max_memory_mb * 1048576L;
  jpeg_mem_src(&cinfo, jpeg, len);
  jpeg_read_header(&cinfo, TRUE);
  if (cinfo.data_precision != 8 || cinfo.num_components != 3 ||
      cinfo.jpeg_color_space != JCS_YCbCr || jpeg_has_multiple_scans(&cinfo) ||
      cinfo.comp_info[0].h_samp_factor != cinfo.max_h_samp_factor ||
      cinfo.comp_info[0].v_samp_factor != cinfo.max_v_samp_factor) {
    jpeg_destroy_decompress(&cinfo);
    return SY_UNSUPPORTED;
  }
  cinfo.scale_num = (unsigned int)num;
  cinfo.scale_denom = 8;
  cinfo.raw_data_out = TRUE;
  cinfo.dct_method = JDCT_ISLOW;
  jpeg_start_decompress(&cinfo);
  /* With 4:2:0 and IDCT scaling, libjpeg uses a larger IDCT on the chroma
   * components to upsample them for free; we want them subsampled, as
   * TurboJPEG's decompress-to-YUV does, so force the luma IDCT size on them
   * the same way it does. */
  if (cinfo.max_h_samp_factor == 2 && cinfo.max_v_samp_factor == 2 &&
      cinfo.comp_info[1].h_samp_factor == 1 && cinfo.comp_info[1].v_samp_factor == 1 &&
      cinfo.comp_info[2].h_samp_factor == 1 && cinfo.comp_info[2].v_samp_factor == 1) {
    for (ci = 1; ci < 3; ci++) {
      jpeg_component_info *comp = &cinfo.comp_info[ci];
      comp->DCT_scaled_size = cinfo.min_DCT_scaled_size;
      comp->MCU_sample_width = 16 * num / 8 / 2;
      cinfo.idct->inverse_DCT[ci] = cinfo.idct->inverse_DCT[0];
    }
  }
  /* Planes are sized for one IDCT size across components. */
  for (ci = 0; ci < 3; ci++) {
    if (cinfo.comp_info[ci].DCT_scaled_size != cinfo.min_DCT_scaled_size) {
      jpeg_destroy_decompress(&cinfo);
      return SY_UNSUPPORTED;
    }
  }
  for (ci = 0; ci < 3; ci++) {
    jpeg_component_info *comp = &cinfo.comp_info[ci];
    int n = comp->DCT_scaled_size, r;
    JDIMENSION width = comp->width_in_blocks * (JDIMENSION)n;
    /* Round the keep range outwards to this component's samples. */
    ctx.lo[ci] = keep_x0 * comp->h_samp_factor / cinfo.max_h_samp_factor;
    ctx.hi[ci] = (keep_x1 * comp->h_samp_factor + cinfo.max_h_samp_factor - 1) /
                 cinfo.max_h_samp_factor;
    ctx.idct[ci] = cinfo.idct->inverse_DCT[ci];
    /* The copy reads the dequantisation table as 16-bit multipliers, as
     * libjpeg-turbo's SIMD build (require-simd) lays it out; the tests check
     * its output is bit-identical to TurboJPEG's. */
    cinfo.idct->inverse_DCT[ci] = n == 3 ? sy_idct_keep_3x3 : sy_idct_keep;
    /* One iMCU row of this component; rows beyond the plane are dropped. */
    rows[ci] = (*cinfo.mem->alloc_sarray)((j_common_ptr)&cinfo, JPOOL_IMAGE,
                                          width + DCTSIZE,
                                          (JDIMENSION)(comp->v_samp_factor * n));
    for (r = 0; r < comp->v_samp_factor * n; r++) row_ptrs[ci][r] = rows[ci][r];
  }

  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPARRAY data[3] = {row_ptrs[0], row_ptrs[1], row_ptrs[2]};
    jpeg_read_raw_data(&cinfo, data,
                       (JDIMENSION)(cinfo.max_v_samp_factor *
                                    cinfo.min_DCT_scaled_size));
    for (ci = 0; ci < 3; ci++) {
      jpeg_component_info *comp = &cinfo.comp_info[ci];
      JDIMENSION avail = comp->width_in_blocks * (JDIMENSION)comp->DCT_scaled_size;
      JDIMENSION copy = widths[ci] < avail ? widths[ci] : avail;
      int r;
      for (r = 0; r < comp->v_samp_factor * comp->DCT_scaled_size &&
                  done[ci] < heights[ci];
           r++, done[ci]++) {
        unsigned char *dst = planes[ci] + (size_t)done[ci] * widths[ci];
        memcpy(dst, rows[ci][r], copy);
        /* A plane padded wider than the decoded blocks repeats its edge. */
        if (copy < widths[ci]) memset(dst + copy, dst[copy - 1], widths[ci] - copy);
      }
    }
  }
  /* Rows the decode did not reach (padding) repeat the last one. */
  for (ci = 0; ci < 3; ci++) {
    for (; done[ci] > 0 && done[ci] < heights[ci]; done[ci]++)
      memcpy(planes[ci] + (size_t)done[ci] * widths[ci],
             planes[ci] + (size_t)(done[ci] - 1) * widths[ci], widths[ci]);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return status;
}
