"""The softmax's exponentials as AVX2 vector code.

:func:`exp_below_max` replaces ``z[j] = exp(z[j] - m)`` over a padded logit
row.  glibc's ``exp`` is a call per entry (~11 ns each, ~12 µs for the 100
rows of an MNIST minibatch); this is one pass of vector arithmetic over the
row, and took 5-7 µs off the 125-135 µs of a batch-100 MNIST perceptron
gradient on one core (same process, interleaved).

Algorithm (per lane, x = z[j] - m, so x <= 0 for the real logits)
------------------------------------------------------------------
* x < ``UNDERFLOW`` gives 0 (also x = -inf).  The largest logit has
  ``exp(0) = 1``, so a term this small (float64: < e^-708 ~ 3e-308, float32:
  < e^-87 ~ 1.6e-38) cannot change the sum of the row or the loss; its
  probability is 0 instead of a subnormal (glibc's exp returns the subnormal).
* n = rint(x / ln 2), r = x - n ln 2 (Cody–Waite: ln 2 split in a high part
  whose products with n are exact, and a low part), |r| <= ln 2 / 2.
* exp(r) by its Taylor polynomial in Horner form with fused multiply-adds,
  degree 13 (float64) or 7 (float32): truncation below 1e-17 (float64) or
  5e-9 (float32) relative.  Measured over 8e5 arguments: float64 within
  1 ulp of glibc's exp (0.06 ulp on average), float32 within 0.9 ulp of the
  exact value (NumPy's float32 exp is up to 2.3 ulp off it).
* exp(x) = exp(r) 2^n, the power of two built from its exponent bits.
* NaN stays NaN (its lane never turns into a number), so NaN in θ still
  shows in the loss and the gradient.  Lanes with x > 0 (the padding lanes
  of a row, which hold whatever the forward read past the last class) are
  computed as x = 0: defined values, which the caller discards.

Entries past the last whole vector (4 float64 or 8 float32 lanes) take the
same arithmetic in scalar code: the padded rows of
:mod:`thermo.networks.sparse_perceptron` have none, the unpadded 10-class
rows of :mod:`thermo.networks.fast_perceptron` two (float64).
"""
from __future__ import annotations

import math

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from thermo.networks._llvm import _I64, _llvm_vector, _splat

__all__ = ["exp_below_max", "UNDERFLOW"]

#: Below these arguments the result is 0 (see the module docstring).
UNDERFLOW = {"float64": -708.0, "float32": -87.0}
# (log2 e, ln 2 high part, ln 2 low part, Taylor degree) per type.  The high
# parts have trailing zero bits, so n * high is exact for the n that occur.
_CONSTANTS = {
    "float64": (1.4426950408889634, 6.93147180369123816490e-01, 1.90821492927058770002e-10, 13),
    "float32": (1.44269504, 0.693359375, -2.12194440e-4, 7),
}
_EXPONENT = {"float64": (64, 52, 1023), "float32": (32, 23, 127)}


@intrinsic
def exp_below_max(typingctx, z, m):
    """``z[j] = exp(z[j] - m)`` for every entry of ``z`` (see the module docstring).

    Parameters
    ----------
    z : 1-D C-contiguous float64 or float32 array
        Logits, overwritten.
    m : float of z's type
        The row's largest logit.

    Returns
    -------
    None
        ``z`` holds the results.

    Examples
    --------
    It is a Numba intrinsic: call it from jitted code.

    >>> import numpy as np
    >>> from numba import njit
    >>> @njit
    ... def shifted_exp(z):
    ...     exp_below_max(z, z.max())
    >>> z = np.array([0.0, -1.0, 1.0, 2.0, -800.0])
    >>> shifted_exp(z)
    >>> print(np.round(z, 6))
    [0.135335 0.049787 0.367879 1.       0.      ]
    """
    if not (isinstance(z, types.Array) and z.ndim == 1 and z.layout == "C"
            and z.dtype in (types.float64, types.float32) and m == z.dtype):
        return None
    sig = types.void(z, m)

    def codegen(context, builder, signature, args):
        tz = signature.args[0]
        name = str(tz.dtype)
        ety, vty, suffix = _llvm_vector(tz.dtype)
        lanes = vty.count
        size = tz.dtype.bitwidth // 8
        z_ary = context.make_array(tz)(context, builder, args[0])
        base = builder.bitcast(z_ary.data, ety.as_pointer())
        n_items = z_ary.nitems
        n_full = builder.mul(builder.sdiv(n_items, _I64(lanes)), _I64(lanes))
        vector_m = _splat(builder, args[1], vty)

        def vector_step(index):
            ptr = builder.bitcast(builder.gep(base, [index]), vty.as_pointer())
            value = builder.load(ptr)
            value.align = size
            store = builder.store(_exp_code(builder, name, vty, suffix,
                                            builder.fsub(value, vector_m)), ptr)
            store.align = size

        def scalar_step(index):
            ptr = builder.gep(base, [index])
            x = builder.fsub(builder.load(ptr), args[1])
            builder.store(_exp_code(builder, name, ety, f"f{tz.dtype.bitwidth}", x), ptr)

        _counted_loop(builder, _I64(0), n_full, lanes, vector_step)
        _counted_loop(builder, n_full, n_items, 1, scalar_step)    # the rest, if any
        return context.get_dummy_value()
    return sig, codegen


def _counted_loop(builder, start, stop, step, body):
    """Emit ``for index in range(start, stop, step): body(index)`` (i64)."""
    entry = builder.block
    loop = builder.append_basic_block("exp_below_max.loop")
    done = builder.append_basic_block("exp_below_max.done")
    builder.cbranch(builder.icmp_signed("<", start, stop), loop, done)
    builder.position_at_end(loop)
    index = builder.phi(_I64)
    index.add_incoming(start, entry)
    body(index)
    following = builder.add(index, _I64(step))
    index.add_incoming(following, builder.block)
    builder.cbranch(builder.icmp_signed("<", following, stop), loop, done)
    builder.position_at_end(done)


def _exp_code(builder, name, ty, suffix, x):
    """IR for exp(x), x of type ``ty`` (a float or a vector of floats)."""
    lanes = ty.count if isinstance(ty, ir.VectorType) else None
    bits, mantissa, bias = _EXPONENT[name]
    ity = ir.IntType(bits) if lanes is None else ir.VectorType(ir.IntType(bits), lanes)
    log2e, ln2_high, ln2_low, degree = _CONSTANTS[name]

    def const(value, of=ty):
        return ir.Constant(of, value if lanes is None else [value] * lanes)

    def call(intrinsic_name, *operands):
        function = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ty, [ty] * len(operands)),
            f"llvm.{intrinsic_name}.{suffix}")
        return builder.call(function, list(operands))

    underflow = builder.fcmp_ordered("<", x, const(UNDERFLOW[name]))
    # x > 0 only in padding lanes; NaN passes both selects unchanged
    xc = builder.select(builder.fcmp_ordered(">", x, const(0.0)), const(0.0), x)
    xc = builder.select(underflow, const(0.0), xc)
    n = call("rint", builder.fmul(xc, const(log2e)))
    r = call("fma", n, const(-ln2_high), xc)
    r = call("fma", n, const(-ln2_low), r)
    p = const(1.0 / math.factorial(degree))
    for k in range(degree - 1, -1, -1):
        p = call("fma", p, r, const(1.0 / math.factorial(k)))
    # 2^n from its exponent bits; a NaN lane takes n = 0 (converting NaN to
    # an integer is undefined) and keeps p = NaN
    n = builder.select(builder.fcmp_ordered("ord", n, n), n, const(0.0))
    # through int32 (-1022 <= n <= 0): AVX2 converts doubles to int32 vectors
    # in one instruction, to int64 only lane by lane
    i32 = ir.IntType(32) if lanes is None else ir.VectorType(ir.IntType(32), lanes)
    n = builder.fptosi(n, i32)
    if bits == 64:
        n = builder.sext(n, ity)
    exponent = builder.add(n, const(bias, ity))
    scale = builder.bitcast(builder.shl(exponent, const(mantissa, ity)), ty)
    return builder.select(underflow, const(0.0), builder.fmul(p, scale))
