/*
 * vidproof._bitstream: the optional C scanner for Annex B start codes.
 *
 * The reference is annexb_spans() in vidproof/digest.py, and this must give the same
 * offsets (tests/unit/test_native.py compares them on generated and real streams):
 *
 *   annexb_spans(data) -> list[tuple[int, int]]
 *       data: any contiguous buffer (bytes, memoryview of a PyAV packet).
 *       The (begin, end) offsets of the NAL units of Annex B data: each begins after a
 *       00 00 01 start code and ends before the next one or at the end of the data,
 *       with trailing zero bytes dropped (they belong to no NAL unit); empty units
 *       are left out.
 *
 * A start code begins with a zero byte, so memchr (vectorised by the C library) jumps
 * from zero byte to zero byte; compressed data has few of them.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

#define VP_BITSTREAM_ABI 1 /* bump when a function's signature or meaning changes */

/* The offset of the next 00 00 01 at or after pos, or -1. */
static Py_ssize_t
find_start(const uint8_t *d, Py_ssize_t pos, Py_ssize_t n)
{
    while (n - pos >= 3) {
        const uint8_t *z = memchr(d + pos, 0, (size_t)(n - pos - 2));
        if (z == NULL)
            return -1;
        Py_ssize_t i = z - d;
        if (d[i + 1] != 0) {
            pos = i + 2; /* neither i nor i + 1 (not zero) begins a start code */
        } else if (d[i + 2] == 1) {
            return i;
        } else {
            pos = i + 1; /* 00 00 xx: a start code may begin at i + 1 (00 00 00 01) */
        }
    }
    return -1;
}

static int
append_span(PyObject *list, Py_ssize_t begin, Py_ssize_t end)
{
    PyObject *span = Py_BuildValue("(nn)", begin, end);
    if (span == NULL)
        return -1;
    int rc = PyList_Append(list, span);
    Py_DECREF(span);
    return rc;
}

static PyObject *
annexb_spans(PyObject *self, PyObject *arg)
{
    (void)self;
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_C_CONTIGUOUS) < 0)
        return NULL;
    const uint8_t *d = view.buf;
    Py_ssize_t n = view.len;
    PyObject *spans = PyList_New(0);
    if (spans == NULL)
        goto done;
    Py_ssize_t start = find_start(d, 0, n);
    while (start >= 0) {
        Py_ssize_t begin = start + 3;
        Py_ssize_t next = find_start(d, begin, n);
        Py_ssize_t end = next < 0 ? n : next;
        while (end > begin && d[end - 1] == 0)
            end--;
        if (end > begin && append_span(spans, begin, end) < 0) {
            Py_CLEAR(spans);
            goto done;
        }
        start = next;
    }
done:
    PyBuffer_Release(&view);
    return spans;
}

static PyMethodDef methods[] = {
    {"annexb_spans", annexb_spans, METH_O,
     "annexb_spans(data) -> list of (begin, end): the NAL units of Annex B data."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_bitstream", "vidproof's optional C start-code scanner.", -1,
    methods,
};

PyMODINIT_FUNC
PyInit__bitstream(void)
{
    PyObject *m = PyModule_Create(&module);
    /* vidproof.digest uses the module only when its ABI is the one it was written for. */
    if (m != NULL && PyModule_AddIntConstant(m, "ABI", VP_BITSTREAM_ABI) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
