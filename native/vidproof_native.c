/*
 * vidproof.stamp._native: C kernels for the stamp blend and the frame fingerprint.
 *
 * Optional: the numpy code in vidproof/stamp/kernels.py and fingerprint.py is the
 * reference, and these kernels must give the same bytes (tests/unit/test_native.py).
 * Both are integer arithmetic; see the Python modules for the formulas.
 *
 *   blend(y, u, v, x0, y0, inv, ta, inv_c, ta_c) -> None
 *       y, u, v: writable 2-D uint8 buffers with contiguous rows (numpy views,
 *       PyAV planes); inv, ta: C-contiguous uint16 (h, w); inv_c, ta_c: (h/2, w/2).
 *       Per pixel of the block at (x0, y0): out = (bg * inv + ta) >> 8.
 *   fingerprint(y, grid, step[, sums, first, stop]) -> bytes
 *       grid*grid block means of the luma plane sampled every `step` pixels.
 *       With `sums` (what copy() returned for this plane before grid rows first ..
 *       stop-1 were changed), only those grid rows are read again.
 *   copy(src_y, src_u, src_v, strides, dst_y, dst_u, dst_v, grid, step) -> bytes
 *       Copies three planes into dst_* (writable 2-D uint8, rows contiguous; their
 *       shapes are the pictures'): src_* are contiguous buffers (PyAV planes) whose
 *       rows are strides[i] bytes apart. Returns the fingerprint's per-cell sums of
 *       the luma copied (grid*grid uint64, native byte order): the sampled rows are
 *       added up as they are copied, not read a second time.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define VP_ABI 2  /* bump when a function's signature or meaning changes (kernels.py) */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int
get_plane(PyObject *obj, Py_buffer *view, int writable, const char *name)
{
    int flags = PyBUF_STRIDES | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0)
        return -1;
    if (view->ndim != 2 || view->itemsize != 1 || view->strides[1] != 1 ||
        view->strides[0] < view->shape[1] ||
        (view->format != NULL && strcmp(view->format, "B") != 0)) {
        PyErr_Format(PyExc_ValueError,
                     "%s: expected a 2-D uint8 plane with contiguous rows", name);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

static int
get_weights(PyObject *obj, Py_buffer *view, const char *name)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return -1;
    if (view->ndim != 2 || view->itemsize != 2 ||
        (view->format != NULL && strcmp(view->format, "H") != 0 &&
         strcmp(view->format, "=H") != 0 && strcmp(view->format, "<H") != 0)) {
        PyErr_Format(PyExc_ValueError, "%s: expected a C-contiguous 2-D uint16 array", name);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* Built for the baseline ISA and for AVX2, picked at load time where the toolchain can. */
#if defined(__GNUC__) && defined(__x86_64__) && defined(__has_attribute)
#if __has_attribute(target_clones) && defined(__linux__)
#define VP_CLONES __attribute__((target_clones("avx2", "default")))
#endif
#endif
#ifndef VP_CLONES
#define VP_CLONES
#endif

VP_CLONES static void
blend_rows(uint8_t *restrict dst, Py_ssize_t stride, const uint16_t *restrict inv,
           const uint16_t *restrict ta, Py_ssize_t w, Py_ssize_t h)
{
    for (Py_ssize_t r = 0; r < h; r++) {
        uint8_t *restrict d = dst + r * stride;
        const uint16_t *restrict i = inv + r * w;
        const uint16_t *restrict t = ta + r * w;
        for (Py_ssize_t x = 0; x < w; x++)
            d[x] = (uint8_t)((uint16_t)(d[x] * i[x] + t[x]) >> 8);
    }
}

static int
check_fits(Py_buffer *plane, Py_ssize_t x0, Py_ssize_t y0, Py_buffer *wts, const char *name)
{
    if (x0 < 0 || y0 < 0 || y0 + wts->shape[0] > plane->shape[0] ||
        x0 + wts->shape[1] > plane->shape[1]) {
        PyErr_Format(PyExc_ValueError, "%s: the stamp block does not fit in the plane", name);
        return -1;
    }
    return 0;
}

static PyObject *
vp_blend(PyObject *self, PyObject *args)
{
    PyObject *oy, *ou, *ov, *oinv, *ota, *oinvc, *otac;
    Py_ssize_t x0, y0;
    if (!PyArg_ParseTuple(args, "OOOnnOOOO:blend", &oy, &ou, &ov, &x0, &y0, &oinv, &ota,
                          &oinvc, &otac))
        return NULL;
    PyObject *objs[7] = {oy, ou, ov, oinv, ota, oinvc, otac};
    static const char *names[7] = {"y", "u", "v", "inv", "ta", "inv_c", "ta_c"};
    Py_buffer b[7];
    int got = 0;
    PyObject *result = NULL;
    for (; got < 7; got++) {
        int rc = got < 3 ? get_plane(objs[got], &b[got], 1, names[got])
                         : get_weights(objs[got], &b[got], names[got]);
        if (rc < 0)
            goto done;
    }
    Py_buffer *by = &b[0], *bu = &b[1], *bv = &b[2];
    Py_buffer *binv = &b[3], *bta = &b[4], *binvc = &b[5], *btac = &b[6];
    if (binv->shape[0] != bta->shape[0] || binv->shape[1] != bta->shape[1] ||
        binvc->shape[0] != btac->shape[0] || binvc->shape[1] != btac->shape[1] ||
        binvc->shape[0] != binv->shape[0] / 2 || binvc->shape[1] != binv->shape[1] / 2 ||
        (x0 & 1) || (y0 & 1)) {
        PyErr_SetString(PyExc_ValueError,
                        "blend: weight arrays of mismatched shapes or odd block position");
        goto done;
    }
    if (check_fits(by, x0, y0, binv, "y") < 0 ||
        check_fits(bu, x0 / 2, y0 / 2, binvc, "u") < 0 ||
        check_fits(bv, x0 / 2, y0 / 2, binvc, "v") < 0)
        goto done;
    Py_BEGIN_ALLOW_THREADS
    blend_rows((uint8_t *)by->buf + y0 * by->strides[0] + x0, by->strides[0],
               (const uint16_t *)binv->buf, (const uint16_t *)bta->buf,
               binv->shape[1], binv->shape[0]);
    blend_rows((uint8_t *)bu->buf + (y0 / 2) * bu->strides[0] + x0 / 2, bu->strides[0],
               (const uint16_t *)binvc->buf, (const uint16_t *)btac->buf,
               binvc->shape[1], binvc->shape[0]);
    blend_rows((uint8_t *)bv->buf + (y0 / 2) * bv->strides[0] + x0 / 2, bv->strides[0],
               (const uint16_t *)binvc->buf, (const uint16_t *)btac->buf,
               binvc->shape[1], binvc->shape[0]);
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    while (got-- > 0)
        PyBuffer_Release(&b[got]);
    return result;
}

/* The fingerprint's sums. Sampled row k (of hs) is plane row k*step; it belongs to
 * grid row i when re[i] <= k < re[i+1]; sampled column c is plane column c*step, in
 * grid column j when ce[j] <= c < ce[j+1]. Rows are added up column by column into
 * a uint16 accumulator (contiguous loads and adds, which the compiler vectorises;
 * a loop over every step-th byte would not vectorise), then the sampled columns of
 * the accumulator are added into their cells. 255 * 257 <= 65535: the accumulator
 * is folded into the cells at least every FP_CHUNK rows. */
#define FP_CHUNK 257
#define FP_MAX_GRID 64

typedef struct {
    Py_ssize_t grid, step, hs, ws, span;
    Py_ssize_t re[FP_MAX_GRID + 1], ce[FP_MAX_GRID + 1];
} fp_layout;

static int
fp_layout_init(fp_layout *l, Py_ssize_t h, Py_ssize_t w, Py_ssize_t grid, Py_ssize_t step)
{
    if (grid < 1 || grid > FP_MAX_GRID || step < 1) {
        PyErr_SetString(PyExc_ValueError, "fingerprint: expected 1 <= grid <= 64, step >= 1");
        return -1;
    }
    l->grid = grid;
    l->step = step;
    l->hs = (h + step - 1) / step;
    l->ws = (w + step - 1) / step;
    if (l->hs < grid || l->ws < grid) {
        PyErr_SetString(PyExc_ValueError, "fingerprint: the plane is smaller than the grid");
        return -1;
    }
    for (Py_ssize_t i = 0; i <= grid; i++) {
        l->re[i] = i * l->hs / grid;
        l->ce[i] = i * l->ws / grid;
    }
    l->span = (l->ws - 1) * step + 1;  /* the columns up to the last sampled one */
    return 0;
}

static void
fp_fold(const fp_layout *l, uint16_t *acc, uint64_t *cells)
{
    for (Py_ssize_t j = 0; j < l->grid; j++) {
        uint64_t s = 0;
        for (Py_ssize_t c = l->ce[j]; c < l->ce[j + 1]; c++)
            s += acc[c * l->step];
        cells[j] += s;
    }
    memset(acc, 0, sizeof(uint16_t) * (size_t)l->span);
}

VP_CLONES static void
add_rows(uint16_t *restrict acc, const uint8_t *restrict first, Py_ssize_t row_stride,
         Py_ssize_t rows, Py_ssize_t w)
{
    Py_ssize_t r = 0;
    for (; r + 2 <= rows; r += 2) {
        const uint8_t *restrict a = first + r * row_stride;
        const uint8_t *restrict b = a + row_stride;
#if defined(__GNUC__)
        /* The sampled rows are step rows apart: ask for the pair after the next one
         * while this one is added (the picture is seldom still in the cache). */
        if (r + 6 <= rows)
            for (Py_ssize_t x = 0; x < w; x += 64) {
                __builtin_prefetch(a + 4 * row_stride + x);
                __builtin_prefetch(a + 5 * row_stride + x);
            }
#endif
        for (Py_ssize_t x = 0; x < w; x++)
            acc[x] = (uint16_t)(acc[x] + a[x] + b[x]);
    }
    for (; r < rows; r++) {
        const uint8_t *restrict a = first + r * row_stride;
        for (Py_ssize_t x = 0; x < w; x++)
            acc[x] = (uint16_t)(acc[x] + a[x]);
    }
}

/* Sums of grid rows first .. stop-1 of the plane, into sums (zeroed there first). */
static void
fp_sum_rows(const fp_layout *l, const uint8_t *buf, Py_ssize_t stride, uint16_t *acc,
            uint64_t *sums, Py_ssize_t first, Py_ssize_t stop)
{
    const Py_ssize_t row_stride = l->step * stride;
    memset(acc, 0, sizeof(uint16_t) * (size_t)l->span);
    for (Py_ssize_t i = first; i < stop; i++) {
        uint64_t *cells = sums + i * l->grid;
        memset(cells, 0, sizeof(uint64_t) * (size_t)l->grid);
        for (Py_ssize_t k = l->re[i]; k < l->re[i + 1]; k += FP_CHUNK) {
            Py_ssize_t rows = l->re[i + 1] - k < FP_CHUNK ? l->re[i + 1] - k : FP_CHUNK;
            add_rows(acc, buf + k * row_stride, row_stride, rows, l->span);
            fp_fold(l, acc, cells);
        }
    }
}

static PyObject *
fp_means(const fp_layout *l, const uint64_t *sums)
{
    PyObject *out = PyBytes_FromStringAndSize(NULL, l->grid * l->grid);
    if (out == NULL)
        return NULL;
    uint8_t *o = (uint8_t *)PyBytes_AS_STRING(out);
    for (Py_ssize_t i = 0; i < l->grid; i++)
        for (Py_ssize_t j = 0; j < l->grid; j++) {
            uint64_t cnt = (uint64_t)(l->re[i + 1] - l->re[i]) *
                           (uint64_t)(l->ce[j + 1] - l->ce[j]);
            o[i * l->grid + j] = (uint8_t)((2 * sums[i * l->grid + j] + cnt) / (2 * cnt));
        }
    return out;
}

static PyObject *
vp_fingerprint(PyObject *self, PyObject *args)
{
    PyObject *oy, *osums = Py_None;
    Py_ssize_t grid, step, first = 0, stop = -1;
    if (!PyArg_ParseTuple(args, "Onn|Onn:fingerprint", &oy, &grid, &step, &osums, &first,
                          &stop))
        return NULL;
    Py_buffer by;
    if (get_plane(oy, &by, 0, "y") < 0)
        return NULL;
    PyObject *result = NULL;
    uint16_t *acc = NULL;
    fp_layout l;
    if (fp_layout_init(&l, by.shape[0], by.shape[1], grid, step) < 0)
        goto done;
    uint64_t sums[FP_MAX_GRID * FP_MAX_GRID];
    if (osums == Py_None) {
        first = 0;
        stop = grid;
    } else {
        char *data;
        Py_ssize_t len;
        if (PyBytes_AsStringAndSize(osums, &data, &len) < 0)
            goto done;
        if (len != (Py_ssize_t)sizeof(uint64_t) * grid * grid || first < 0 || stop < first ||
            stop > grid) {
            PyErr_SetString(PyExc_ValueError,
                            "fingerprint: sums of another grid, or rows out of range");
            goto done;
        }
        memcpy(sums, data, (size_t)len);
    }
    acc = PyMem_Malloc(sizeof(uint16_t) * (size_t)l.span);
    if (acc == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    fp_sum_rows(&l, (const uint8_t *)by.buf, by.strides[0], acc, sums, first, stop);
    Py_END_ALLOW_THREADS
    result = fp_means(&l, sums);
done:
    PyMem_Free(acc);
    PyBuffer_Release(&by);
    return result;
}

/* A luma row copied, and added into the accumulator as it is (the sampled rows). */
VP_CLONES static void
copy_add_row(uint8_t *restrict d, const uint8_t *restrict s, uint16_t *restrict acc,
             Py_ssize_t span)
{
    for (Py_ssize_t x = 0; x < span; x++) {
        uint8_t v = s[x];
        d[x] = v;
        acc[x] = (uint16_t)(acc[x] + v);
    }
}

static void
copy_rows(uint8_t *d, Py_ssize_t ds, const uint8_t *s, Py_ssize_t ss, Py_ssize_t w,
          Py_ssize_t h)
{
    if (ds == w && ss == w) {
        memcpy(d, s, (size_t)(w * h));
        return;
    }
    for (Py_ssize_t r = 0; r < h; r++)
        memcpy(d + r * ds, s + r * ss, (size_t)w);
}

static PyObject *
vp_copy(PyObject *self, PyObject *args)
{
    PyObject *src[3], *dst[3], *ostrides;
    Py_ssize_t grid, step, strides[3];
    if (!PyArg_ParseTuple(args, "OOOOOOOnn:copy", &src[0], &src[1], &src[2], &ostrides,
                          &dst[0], &dst[1], &dst[2], &grid, &step))
        return NULL;
    if (!PyArg_ParseTuple(ostrides, "nnn:copy strides", &strides[0], &strides[1],
                          &strides[2]))
        return NULL;
    static const char *names[3] = {"y", "u", "v"};
    Py_buffer sb[3], db[3];
    int got_s = 0, got_d = 0;
    PyObject *result = NULL;
    uint16_t *acc = NULL;
    for (; got_d < 3; got_d++)
        if (get_plane(dst[got_d], &db[got_d], 1, names[got_d]) < 0)
            goto done;
    for (; got_s < 3; got_s++) {
        if (PyObject_GetBuffer(src[got_s], &sb[got_s], PyBUF_SIMPLE) < 0)
            goto done;
        Py_ssize_t h = db[got_s].shape[0], w = db[got_s].shape[1];
        if (strides[got_s] < w || (h > 0 && sb[got_s].len < (h - 1) * strides[got_s] + w)) {
            PyErr_Format(PyExc_ValueError, "copy: source plane %s is smaller than %zd rows "
                         "of %zd bytes, %zd apart", names[got_s], h, w, strides[got_s]);
            got_s++;
            goto done;
        }
    }
    fp_layout l;
    if (fp_layout_init(&l, db[0].shape[0], db[0].shape[1], grid, step) < 0)
        goto done;
    acc = PyMem_Calloc((size_t)l.span, sizeof(uint16_t));
    if (acc == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    uint64_t sums[FP_MAX_GRID * FP_MAX_GRID];
    memset(sums, 0, sizeof(sums));
    Py_BEGIN_ALLOW_THREADS
    const Py_ssize_t w = db[0].shape[1], h = db[0].shape[0];
    const Py_ssize_t ss = strides[0], ds = db[0].strides[0];
    const uint8_t *s = sb[0].buf;
    uint8_t *d = db[0].buf;
    Py_ssize_t r = 0;  /* the next plane row to copy */
    for (Py_ssize_t i = 0; i < grid; i++) {
        Py_ssize_t added = 0;
        for (Py_ssize_t k = l.re[i]; k < l.re[i + 1]; k++) {
            /* the rows before sampled row k, copied only; then row k, copied and added */
            Py_ssize_t row = k * step;
            copy_rows(d + r * ds, ds, s + r * ss, ss, w, row - r);
            copy_add_row(d + row * ds, s + row * ss, acc, l.span);
            if (l.span < w)
                memcpy(d + row * ds + l.span, s + row * ss + l.span, (size_t)(w - l.span));
            r = row + 1;
            if (++added == FP_CHUNK) {
                fp_fold(&l, acc, sums + i * grid);
                added = 0;
            }
        }
        fp_fold(&l, acc, sums + i * grid);
    }
    copy_rows(d + r * ds, ds, s + r * ss, ss, w, h - r);
    for (int i = 1; i < 3; i++)
        copy_rows(db[i].buf, db[i].strides[0], sb[i].buf, strides[i], db[i].shape[1],
                  db[i].shape[0]);
    Py_END_ALLOW_THREADS
    result = PyBytes_FromStringAndSize((const char *)sums,
                                       (Py_ssize_t)sizeof(uint64_t) * grid * grid);
done:
    PyMem_Free(acc);
    while (got_s-- > 0)
        PyBuffer_Release(&sb[got_s]);
    while (got_d-- > 0)
        PyBuffer_Release(&db[got_d]);
    return result;
}

static PyMethodDef methods[] = {
    {"blend", vp_blend, METH_VARARGS,
     "blend(y, u, v, x0, y0, inv, ta, inv_c, ta_c): stamp a YUV 4:2:0 frame in place."},
    {"fingerprint", vp_fingerprint, METH_VARARGS,
     "fingerprint(y, grid, step[, sums, first, stop]) -> bytes: block means of the sampled "
     "luma plane (with sums from copy(): grid rows first..stop-1 read again)."},
    {"copy", vp_copy, METH_VARARGS,
     "copy(src_y, src_u, src_v, strides, dst_y, dst_u, dst_v, grid, step) -> bytes: copy "
     "three planes; the fingerprint's per-cell sums of the luma."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_native", "vidproof's optional C kernels (stamp, fingerprint, copy).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__native(void)
{
    PyObject *m = PyModule_Create(&module);
    /* The functions' signatures: vidproof.stamp.kernels refuses a module built from
     * another version of this file (a stale build), and uses numpy instead. */
    if (m != NULL && PyModule_AddIntConstant(m, "ABI", VP_ABI) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
