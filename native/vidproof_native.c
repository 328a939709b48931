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
 *   fingerprint(y, grid, step) -> bytes
 *       grid*grid block means of the luma plane sampled every `step` pixels.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
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

static PyObject *
vp_fingerprint(PyObject *self, PyObject *args)
{
    PyObject *oy;
    Py_ssize_t grid, step;
    if (!PyArg_ParseTuple(args, "Onn:fingerprint", &oy, &grid, &step))
        return NULL;
    if (grid < 1 || grid > 64 || step < 1) {
        PyErr_SetString(PyExc_ValueError, "fingerprint: expected 1 <= grid <= 64, step >= 1");
        return NULL;
    }
    Py_buffer by;
    if (get_plane(oy, &by, 0, "y") < 0)
        return NULL;
    const Py_ssize_t h = by.shape[0], w = by.shape[1];
    const Py_ssize_t hs = (h + step - 1) / step, ws = (w + step - 1) / step;
    if (hs < grid || ws < grid) {
        PyBuffer_Release(&by);
        PyErr_SetString(PyExc_ValueError, "fingerprint: the plane is smaller than the grid");
        return NULL;
    }
    Py_ssize_t re[65], ce[65];
    for (Py_ssize_t i = 0; i <= grid; i++) {
        re[i] = i * hs / grid;
        ce[i] = i * ws / grid;
    }
    uint64_t sums[64 * 64];
    memset(sums, 0, sizeof(uint64_t) * (size_t)(grid * grid));
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < grid; i++) {
        uint64_t *cell = sums + i * grid;
        for (Py_ssize_t k = re[i]; k < re[i + 1]; k++) {
            const uint8_t *row = (const uint8_t *)by.buf + k * step * by.strides[0];
            for (Py_ssize_t j = 0; j < grid; j++) {
                uint32_t s = 0;
                if (step == 1) {
                    for (Py_ssize_t c = ce[j]; c < ce[j + 1]; c++)
                        s += row[c];
                } else {
                    for (Py_ssize_t c = ce[j]; c < ce[j + 1]; c++)
                        s += row[c * step];
                }
                cell[j] += s;
            }
        }
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&by);
    PyObject *out = PyBytes_FromStringAndSize(NULL, grid * grid);
    if (out == NULL)
        return NULL;
    uint8_t *o = (uint8_t *)PyBytes_AS_STRING(out);
    for (Py_ssize_t i = 0; i < grid; i++)
        for (Py_ssize_t j = 0; j < grid; j++) {
            uint64_t cnt = (uint64_t)(re[i + 1] - re[i]) * (uint64_t)(ce[j + 1] - ce[j]);
            o[i * grid + j] = (uint8_t)((2 * sums[i * grid + j] + cnt) / (2 * cnt));
        }
    return out;
}

static PyMethodDef methods[] = {
    {"blend", vp_blend, METH_VARARGS,
     "blend(y, u, v, x0, y0, inv, ta, inv_c, ta_c): stamp a YUV 4:2:0 frame in place."},
    {"fingerprint", vp_fingerprint, METH_VARARGS,
     "fingerprint(y, grid, step) -> bytes: block means of the sampled luma plane."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_native", "vidproof's optional C kernels (stamp, fingerprint).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__native(void)
{
    return PyModule_Create(&module);
}
