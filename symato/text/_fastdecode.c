/* _fastdecode: the compiled decode loop of symato's table-encoded tokenizers.
 *
 * Why C: decoding one line (~100 ids) or one sampled token in Python costs a fixed ~3 us
 * per call plus ~55-90 ns per id; sentencepiece does it in C++. Here the loop is a few
 * ns per id and one call in, one object out.
 *
 * What it computes: exactly ``symato.text.decoding.decode`` (the Python reference), for
 * every id sequence in range, well formed or not:
 *   - an id of class OWN (a byte, special, merge, reserved or sentencepiece piece)
 *     writes its own bytes; it ends a syllable run and drops a pending case;
 *   - CASE sets the pending case (1 Title, 2 UPPER); SYM becomes the pending sym;
 *   - MT after a pending sym writes the syllable (sym, marktone, case) -- an illegal
 *     pair writes the bare sym -- else it only drops a pending case;
 *   - WHOLE writes a whole syllable in the pending case;
 *   - a pending sym followed by anything but a marktone is written bare first;
 *   - a syllable right after a syllable gets the implicit space before it.
 * The tables come from Python (``symato.text.fastdecode.tables``), so every byte written
 * is a byte the Python tables hold; the loop only chooses slices.
 *
 * Anything this path does not take -- an id out of range, an item that is not a plain
 * int, a sequence type other than list / tuple / 1-D native-integer buffer -- makes the
 * call return None before any state changes: the caller then runs the checking Python
 * path, which reports the bad id or decodes it as the reference does.
 *
 * Tables (all native-endian, copied at construction):
 *   cls[t]  uint8   OWN 0, MT 1, CASE 2, SYM 3, WHOLE 4
 *   arg[t]  int32   MT: marktone 0..17; CASE: 1 or 2; SYM: sym index; WHOLE: whole index
 *   off[i], len[i]  uint32  output slice i of blob:
 *     i < V                          the own bytes of id i (empty unless OWN)
 *     V + (s * 19 + m) * 3 + c       sym s with marktone m (18 = none: the bare sym) in
 *                                    case c (0 lower, 1 Title, 2 UPPER)
 *     V + n_syms * 57 + w * 3 + c    whole syllable w in case c
 *   Syllable slices start with the space that goes before them: the loop writes from
 *   off + 1 - prev, so the implicit space costs no branch.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

enum { C_OWN = 0, C_MT = 1, C_CASE = 2, C_SYM = 3, C_WHOLE = 4 };
#define FORMS 19 /* 18 marktones + the bare sym */
#define BARE 18
#define ERRORS "symato-surrogates" /* the decode error handler symato.text.codecs.base registers */

/* ------------------------------------------------------------------ output buffer */
typedef struct {
    char *p;
    Py_ssize_t n, cap;
    char *heap;
    char stack[2048];
} Buf;

static void buf_init(Buf *b) {
    b->p = b->stack;
    b->n = 0;
    b->cap = (Py_ssize_t)sizeof b->stack;
    b->heap = NULL;
}

static void buf_free(Buf *b) { PyMem_Free(b->heap); }

static int buf_grow(Buf *b, Py_ssize_t need) {
    Py_ssize_t cap = b->cap;
    while (cap - b->n < need) {
        if (cap > PY_SSIZE_T_MAX / 2) {
            PyErr_NoMemory();
            return -1;
        }
        cap *= 2;
    }
    char *q = b->heap ? PyMem_Realloc(b->heap, (size_t)cap) : PyMem_Malloc((size_t)cap);
    if (q == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    if (b->heap == NULL)
        memcpy(q, b->stack, (size_t)b->n);
    b->heap = b->p = q;
    b->cap = cap;
    return 0;
}

static inline int put(Buf *b, const char *src, Py_ssize_t n) {
    if (b->cap - b->n < n && buf_grow(b, n) < 0)
        return -1;
    memcpy(b->p + b->n, src, (size_t)n);
    b->n += n;
    return 0;
}

/* put() for a slice of the blob (padded with PAD readable bytes at its end): a short
 * slice is copied as one fixed-size block (no memcpy call, no length-dependent branch);
 * the bytes past n are overwritten by the next slice or cut off at the end. */
#define PAD 16
static inline int put_blob(Buf *b, const char *src, Py_ssize_t n) {
    if (n <= PAD && b->cap - b->n >= PAD) {
        memcpy(b->p + b->n, src, PAD);
        b->n += n;
        return 0;
    }
    return put(b, src, n);
}

/* ------------------------------------------------------------------ ids in */
typedef struct {
    const uint32_t *v;
    Py_ssize_t n;
    uint32_t *heap;
    uint32_t stack[512];
} Ids;

static void ids_free(Ids *ids) { PyMem_Free(ids->heap); }

static uint32_t *ids_alloc(Ids *ids, Py_ssize_t n) {
    ids->n = n;
    ids->heap = NULL;
    if (n <= (Py_ssize_t)(sizeof ids->stack / sizeof ids->stack[0])) {
        ids->v = ids->stack;
        return ids->stack;
    }
    if ((size_t)n > PY_SSIZE_T_MAX / sizeof(uint32_t)) {
        PyErr_NoMemory();
        return NULL;
    }
    ids->heap = PyMem_Malloc((size_t)n * sizeof(uint32_t));
    if (ids->heap == NULL)
        PyErr_NoMemory();
    ids->v = ids->heap;
    return ids->heap;
}

static int little_endian(void) {
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

/* Read ids from a 1-D C-contiguous buffer of native-order integers. 0 ok, 1 not for
 * this path (the Python path decides), -1 error set. */
static int ids_from_buffer(Ids *ids, PyObject *obj, Py_ssize_t limit) {
    Py_buffer view;
    if (PyObject_GetBuffer(obj, &view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        PyErr_Clear();
        return 1;
    }
    int rc = 1;
    const char *fmt = view.format ? view.format : "B";
    if (*fmt == '@' || *fmt == '=' || (*fmt == '<' && little_endian())
        || ((*fmt == '>' || *fmt == '!') && !little_endian()))
        fmt++;
    Py_ssize_t size = view.itemsize;
    int is_signed = fmt[0] == 'b' || fmt[0] == 'h' || fmt[0] == 'i' || fmt[0] == 'l'
                    || fmt[0] == 'q';
    int is_unsigned = fmt[0] == 'B' || fmt[0] == 'H' || fmt[0] == 'I' || fmt[0] == 'L'
                      || fmt[0] == 'Q';
    if (view.ndim != 1 || fmt[1] != '\0' || !(is_signed || is_unsigned)
        || !(size == 1 || size == 2 || size == 4 || size == 8))
        goto done;
    Py_ssize_t n = view.shape[0];
    uint32_t *out = ids_alloc(ids, n);
    if (out == NULL) {
        rc = -1;
        goto done;
    }
    const char *p = view.buf;
    for (Py_ssize_t i = 0; i < n; i++, p += size) {
        int64_t x;
        if (size == 1)
            x = is_signed ? *(const int8_t *)p : *(const uint8_t *)p;
        else if (size == 2) {
            if (is_signed) { int16_t y; memcpy(&y, p, 2); x = y; }
            else { uint16_t y; memcpy(&y, p, 2); x = y; }
        } else if (size == 4) {
            if (is_signed) { int32_t y; memcpy(&y, p, 4); x = y; }
            else { uint32_t y; memcpy(&y, p, 4); x = y; }
        } else {
            uint64_t y;
            memcpy(&y, p, 8);
            if (!is_signed && y > (uint64_t)INT64_MAX)
                goto done; /* out of range */
            x = (int64_t)y;
        }
        if (x < 0 || x >= limit)
            goto done;
        out[i] = (uint32_t)x;
    }
    rc = 0;
done:
    PyBuffer_Release(&view);
    return rc;
}

/* ids from a list, a tuple or a buffer: 0 ok, 1 not for this path, -1 error set. */
static int ids_get(Ids *ids, PyObject *obj, Py_ssize_t limit) {
    ids->heap = NULL;
    ids->n = 0;
    ids->v = ids->stack;
    PyObject **items;
    Py_ssize_t n;
    if (PyList_CheckExact(obj)) {
        items = ((PyListObject *)obj)->ob_item;
        n = PyList_GET_SIZE(obj);
    } else if (PyTuple_CheckExact(obj)) {
        items = ((PyTupleObject *)obj)->ob_item;
        n = PyTuple_GET_SIZE(obj);
    } else if (PyObject_CheckBuffer(obj)) {
        return ids_from_buffer(ids, obj, limit);
    } else {
        return 1;
    }
    uint32_t *out = ids_alloc(ids, n);
    if (out == NULL)
        return -1;
    /* No Python code runs in this loop (exact ints only), so the list cannot change. */
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = items[i];
        if (!PyLong_CheckExact(item))
            return 1; /* bool, numpy integers, floats...: the Python path decides */
        int overflow;
        long x = PyLong_AsLongAndOverflow(item, &overflow);
        if (overflow || x < 0 || x >= limit)
            return 1;
        out[i] = (uint32_t)x;
    }
    return 0;
}

/* ------------------------------------------------------------------ the decoder */
typedef struct {
    PyObject_HEAD
    uint8_t *cls;
    int32_t *arg;
    uint32_t *off, *len;
    char *blob;
    Py_ssize_t n_ids, n_syms, n_whole, n_slices, whole_base;
    int ready; /* 1 only after every table was copied and passed Decoder_check */
} Decoder;

typedef struct {
    int cs;      /* pending case: 0 none, 1 Title, 2 UPPER */
    int32_t sym; /* pending sym id, -1 for none */
    int prev;    /* 1: the last thing written was a syllable */
} State;

static inline int put_syl(const Decoder *d, Buf *b, Py_ssize_t i, int prev) {
    return put_blob(b, d->blob + d->off[i] + 1 - prev, (Py_ssize_t)d->len[i] - 1 + prev);
}

static inline Py_ssize_t syl_slice(const Decoder *d, int32_t s, int32_t m, int c) {
    return d->n_ids + ((Py_ssize_t)s * FORMS + m) * 3 + c;
}

/* The reference loop (see the top of this file). State in, state out; -1 on error. */
static int run(const Decoder *d, const uint32_t *v, Py_ssize_t n, State *st, Buf *b) {
    const uint8_t *cls = d->cls;
    const int32_t *arg = d->arg;
    int cs = st->cs, prev = st->prev;
    int32_t sym = st->sym;
    for (Py_ssize_t i = 0; i < n; i++) {
        uint32_t t = v[i];
        uint8_t k = cls[t];
        if (k == C_MT) {
            if (sym >= 0) {
                if (put_syl(d, b, syl_slice(d, arg[sym], arg[t], cs), prev) < 0)
                    return -1;
                prev = 1;
                sym = -1;
            }
            cs = 0;
            continue;
        }
        if (sym >= 0) { /* a sym not followed by a marktone: written bare */
            if (put_syl(d, b, syl_slice(d, arg[sym], BARE, cs), prev) < 0)
                return -1;
            prev = 1;
            cs = 0;
            sym = -1;
        }
        switch (k) {
        case C_OWN:
            if (put_blob(b, d->blob + d->off[t], (Py_ssize_t)d->len[t]) < 0)
                return -1;
            prev = 0;
            cs = 0;
            break;
        case C_SYM:
            sym = (int32_t)t;
            break;
        case C_CASE:
            cs = arg[t];
            break;
        default: /* C_WHOLE */
            if (put_syl(d, b, d->whole_base + (Py_ssize_t)arg[t] * 3 + cs, prev) < 0)
                return -1;
            prev = 1;
            cs = 0;
        }
    }
    st->cs = cs;
    st->sym = sym;
    st->prev = prev;
    return 0;
}

/* What a decode still owes at the end: a pending sym, written bare. */
static int flush(const Decoder *d, const State *st, Buf *b) {
    if (st->sym < 0)
        return 0;
    return put_syl(d, b, syl_slice(d, d->arg[st->sym], BARE, st->cs), st->prev);
}

/* A private copy of a table (bytes of exactly ``want`` bytes), zero-padded by ``pad``. */
static void *copy_table(PyObject *obj, Py_ssize_t want, const char *name, Py_ssize_t pad) {
    if (!PyBytes_Check(obj) || PyBytes_GET_SIZE(obj) != want) {
        PyErr_Format(PyExc_ValueError, "_fastdecode.Decoder: table %s must be %zd bytes",
                     name, want);
        return NULL;
    }
    char *p = PyMem_Calloc((size_t)(want + pad) + 1, 1);
    if (p == NULL)
        return PyErr_NoMemory();
    memcpy(p, PyBytes_AS_STRING(obj), (size_t)want);
    return p;
}

static int Decoder_check(Decoder *d, Py_ssize_t blob_len) {
    static const int32_t hi[] = {0, 17, 2, 0, 0}; /* arg bounds per class */
    for (Py_ssize_t t = 0; t < d->n_ids; t++) {
        uint8_t k = d->cls[t];
        int32_t a = d->arg[t];
        int32_t top = k == C_SYM ? (int32_t)d->n_syms - 1
                      : k == C_WHOLE ? (int32_t)d->n_whole - 1 : (k <= C_WHOLE ? hi[k] : -1);
        int32_t low = k == C_CASE ? 1 : 0;
        if (k > C_WHOLE || a < low || a > top) {
            PyErr_Format(PyExc_ValueError, "_fastdecode.Decoder: id %zd has class %d, arg %d",
                         t, (int)k, (int)a);
            return -1;
        }
    }
    for (Py_ssize_t i = 0; i < d->n_slices; i++) {
        if ((uint64_t)d->off[i] + d->len[i] > (uint64_t)blob_len
            || (i >= d->n_ids && (d->len[i] < 1 || d->blob[d->off[i]] != ' '))) {
            PyErr_Format(PyExc_ValueError, "_fastdecode.Decoder: slice %zd is out of the blob "
                         "or a syllable slice without its leading space", i);
            return -1;
        }
    }
    return 0;
}

/* Free the tables and mark d not ready: a failed (or repeated) __init__ must not leave
 * tables that passed no check, or sizes that do not match them, behind a ready flag. */
static void Decoder_clear(Decoder *d) {
    PyMem_Free(d->cls);
    PyMem_Free(d->arg);
    PyMem_Free(d->off);
    PyMem_Free(d->len);
    PyMem_Free(d->blob);
    d->cls = NULL;
    d->blob = NULL;
    d->arg = NULL;
    d->off = d->len = NULL;
    d->n_ids = d->n_syms = d->n_whole = d->n_slices = d->whole_base = 0;
    d->ready = 0;
}

/* Copy and check the tables; d is ready only when every table passed Decoder_check. */
static int Decoder_build(Decoder *d, PyObject *cls, PyObject *arg, PyObject *off,
                         PyObject *len, PyObject *blob, Py_ssize_t n_syms, Py_ssize_t n_whole) {
    if (!PyBytes_Check(cls) || !PyBytes_Check(blob) || n_syms < 0 || n_whole < 0
        || PyBytes_GET_SIZE(cls) >= INT32_MAX || n_syms >= INT32_MAX / FORMS
        || n_whole >= INT32_MAX / 3 || PyBytes_GET_SIZE(blob) >= UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "_fastdecode.Decoder: bad table sizes");
        return -1;
    }
    d->n_ids = PyBytes_GET_SIZE(cls);
    d->n_syms = n_syms;
    d->n_whole = n_whole;
    d->whole_base = d->n_ids + n_syms * FORMS * 3;
    d->n_slices = d->whole_base + n_whole * 3;
    Py_ssize_t nb = PyBytes_GET_SIZE(blob);
    if (!(d->cls = copy_table(cls, d->n_ids, "cls", 0))
        || !(d->arg = copy_table(arg, d->n_ids * 4, "arg", 0))
        || !(d->off = copy_table(off, d->n_slices * 4, "off", 0))
        || !(d->len = copy_table(len, d->n_slices * 4, "len", 0))
        || !(d->blob = copy_table(blob, nb, "blob", PAD))
        || Decoder_check(d, nb) < 0)
        return -1;
    d->ready = 1;
    return 0;
}

static int Decoder_init(Decoder *d, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"cls", "arg", "off", "len", "blob", "n_syms", "n_whole", NULL};
    PyObject *cls, *arg, *off, *len, *blob;
    Py_ssize_t n_syms, n_whole;
    if (d->ready) {
        PyErr_SetString(PyExc_TypeError, "_fastdecode.Decoder is initialized once");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOOOnn", kwlist, &cls, &arg, &off, &len,
                                     &blob, &n_syms, &n_whole))
        return -1;
    Decoder_clear(d); /* what an earlier failed __init__ may have left */
    if (Decoder_build(d, cls, arg, off, len, blob, n_syms, n_whole) < 0) {
        Decoder_clear(d);
        return -1;
    }
    return 0;
}

static void Decoder_dealloc(Decoder *d) {
    Decoder_clear(d);
    Py_TYPE(d)->tp_free((PyObject *)d);
}

static int Decoder_ready(Decoder *d) {
    if (!d->ready) {
        PyErr_SetString(PyExc_TypeError, "_fastdecode.Decoder is not initialized (its "
                        "__init__ was not called or failed)");
        return -1;
    }
    return 0;
}

/* Decode ids in one go into b. 0 ok, 1 not for this path, -1 error set. */
static int decode_all(Decoder *d, PyObject *obj, Buf *b) {
    Ids ids;
    if (Decoder_ready(d) < 0)
        return -1;
    int rc = ids_get(&ids, obj, d->n_ids);
    if (rc == 0) {
        State st = {0, -1, 0};
        rc = run(d, ids.v, ids.n, &st, b) < 0 || flush(d, &st, b) < 0 ? -1 : 0;
    }
    ids_free(&ids);
    return rc;
}

/* decode / decode_bytes: str (text != 0) or bytes, None if ids are not for this path. */
static PyObject *decode_to(Decoder *d, PyObject *obj, int text) {
    Buf b;
    buf_init(&b);
    int rc = decode_all(d, obj, &b);
    PyObject *out = rc < 0 ? NULL
                    : rc   ? Py_NewRef(Py_None)
                    : text ? PyUnicode_DecodeUTF8(b.p, b.n, ERRORS)
                           : PyBytes_FromStringAndSize(b.p, b.n);
    buf_free(&b);
    return out;
}

static PyObject *Decoder_decode_bytes(Decoder *d, PyObject *obj) { return decode_to(d, obj, 0); }

static PyObject *Decoder_decode(Decoder *d, PyObject *obj) { return decode_to(d, obj, 1); }

static PyObject *Decoder_stream(Decoder *d, PyObject *unused);
static PyTypeObject StreamType;

static PyMethodDef Decoder_methods[] = {
    {"decode_bytes", (PyCFunction)Decoder_decode_bytes, METH_O,
     "decode_bytes(ids) -> bytes, or None if ids are not plain in-range ints in a list, "
     "tuple or 1-D integer buffer (the caller then takes the checking path)."},
    {"decode", (PyCFunction)Decoder_decode, METH_O,
     "decode(ids) -> str (invalid UTF-8 through the 'symato-surrogates' handler), or None "
     "as decode_bytes."},
    {"stream", (PyCFunction)Decoder_stream, METH_NOARGS, "stream() -> a new Stream."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject DecoderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "symato.text._fastdecode.Decoder",
    .tp_basicsize = sizeof(Decoder),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Decoder(cls, arg, off, len, blob, n_syms, n_whole): the tables of one "
              "tokenizer (see the module source) and its decode loop.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Decoder_init,
    .tp_dealloc = (destructor)Decoder_dealloc,
    .tp_methods = Decoder_methods,
};

/* ------------------------------------------------------------------ streaming */
typedef struct {
    PyObject_HEAD
    Decoder *dec;
    State st;
    unsigned char held[4]; /* an incomplete UTF-8 sequence at the end (at most 3 bytes) */
    int n_held;
} Stream;

/* Length of the longest prefix of data whose decoding no later byte can change: all but
 * a trailing lead byte whose sequence is incomplete (``decoding.utf8_cut``). */
static Py_ssize_t utf8_cut(const unsigned char *data, Py_ssize_t n) {
    Py_ssize_t top = n < 4 ? n : 4;
    for (Py_ssize_t back = 1; back <= top; back++) {
        unsigned char c = data[n - back];
        if ((c & 0xC0) != 0x80) {
            Py_ssize_t need = (c >= 0xC0 && c < 0xE0) ? 2 : (c >= 0xE0 && c < 0xF0) ? 3
                              : c >= 0xF0 ? 4 : 1;
            return need > back ? n - back : n;
        }
    }
    return n;
}

static PyObject *Decoder_stream(Decoder *d, PyObject *unused) {
    if (Decoder_ready(d) < 0)
        return NULL;
    Stream *s = PyObject_New(Stream, &StreamType);
    if (s == NULL)
        return NULL;
    s->dec = (Decoder *)Py_NewRef((PyObject *)d);
    s->st = (State){0, -1, 0};
    s->n_held = 0;
    return (PyObject *)s;
}

static void Stream_dealloc(Stream *s) {
    Py_XDECREF(s->dec);
    PyObject_Free(s);
}

/* feed(ids) -> the new final text, or None (nothing changed) if ids are not for this path */
static PyObject *Stream_feed(Stream *s, PyObject *obj) {
    Ids ids;
    Buf b;
    buf_init(&b);
    int rc = ids_get(&ids, obj, s->dec->n_ids);
    State st = s->st;
    PyObject *out = NULL;
    if (rc == 1)
        out = Py_NewRef(Py_None);
    if (rc != 0 || put(&b, (const char *)s->held, s->n_held) < 0
        || run(s->dec, ids.v, ids.n, &st, &b) < 0)
        goto done;
    Py_ssize_t cut = utf8_cut((const unsigned char *)b.p, b.n);
    out = PyUnicode_DecodeUTF8(b.p, cut, ERRORS);
    if (out == NULL)
        goto done;
    s->st = st;
    s->n_held = (int)(b.n - cut); /* at most 3: utf8_cut looks back 3 bytes past a lead */
    memcpy(s->held, b.p + cut, (size_t)s->n_held);
done:
    ids_free(&ids);
    buf_free(&b);
    return out;
}

/* finish() -> the rest (a pending sym, held bytes) as decode writes it; then reset */
static PyObject *Stream_finish(Stream *s, PyObject *unused) {
    Buf b;
    buf_init(&b);
    PyObject *out = NULL;
    if (put(&b, (const char *)s->held, s->n_held) == 0 && flush(s->dec, &s->st, &b) == 0)
        out = PyUnicode_DecodeUTF8(b.p, b.n, ERRORS);
    buf_free(&b);
    if (out != NULL) {
        s->st = (State){0, -1, 0};
        s->n_held = 0;
    }
    return out;
}

static PyObject *Stream_get_state(Stream *s, void *closure) {
    return Py_BuildValue("(iiiy#)", s->st.cs, (int)s->st.sym, s->st.prev,
                         (const char *)s->held, (Py_ssize_t)s->n_held);
}

static int Stream_set_state(Stream *s, PyObject *value, void *closure) {
    int cs, sym, prev;
    const char *held;
    Py_ssize_t n_held;
    if (value == NULL || !PyArg_ParseTuple(value, "iiiy#", &cs, &sym, &prev, &held, &n_held)) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "state: (case, sym id, prev, held bytes)");
        return -1;
    }
    const Decoder *d = s->dec;
    if (cs < 0 || cs > 2 || (prev != 0 && prev != 1) || n_held > 3 || sym < -1
        || sym >= d->n_ids || (sym >= 0 && d->cls[sym] != C_SYM)) {
        PyErr_SetString(PyExc_ValueError, "state: out of range");
        return -1;
    }
    s->st = (State){cs, sym, prev};
    s->n_held = (int)n_held;
    memcpy(s->held, held, (size_t)n_held);
    return 0;
}

static PyMethodDef Stream_methods[] = {
    {"feed", (PyCFunction)Stream_feed, METH_O,
     "feed(ids) -> the text no later id can change, or None (state unchanged) if ids are "
     "not for this path."},
    {"finish", (PyCFunction)Stream_finish, METH_NOARGS,
     "finish() -> what is held, decoded as decode does at the end; resets the stream."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Stream_getset[] = {
    {"state", (getter)Stream_get_state, (setter)Stream_set_state,
     "(pending case, pending sym id or -1, last output a syllable, held bytes)", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject StreamType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "symato.text._fastdecode.Stream",
    .tp_basicsize = sizeof(Stream),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Incremental decoding state of one Decoder (Decoder.stream()).",
    .tp_dealloc = (destructor)Stream_dealloc,
    .tp_methods = Stream_methods,
    .tp_getset = Stream_getset,
};

/* ------------------------------------------------------------------ module */
static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "symato.text._fastdecode",
    .m_doc = "The compiled decode loop of symato's table-encoded tokenizers "
             "(symato.text.fastdecode builds its tables).",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__fastdecode(void) {
    if (PyType_Ready(&DecoderType) < 0 || PyType_Ready(&StreamType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "Decoder", (PyObject *)&DecoderType) < 0
        || PyModule_AddObjectRef(m, "Stream", (PyObject *)&StreamType) < 0
        || PyModule_AddIntConstant(m, "ABI", 1) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
