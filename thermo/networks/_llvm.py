"""Small LLVM IR helpers shared by the hand-written vector kernels.

The perceptron kernels (:mod:`thermo.networks.fast_perceptron`,
:mod:`thermo.networks.sparse_perceptron`) and the softmax's exponentials
(:mod:`thermo.networks.vector_exp`) emit AVX2 code through Numba intrinsics;
these are the pieces they all need: the vector types, an unaligned vector
load, a broadcast, and a software prefetch.
"""
from __future__ import annotations

from llvmlite import ir
from numba.core import cgutils, types

_I64 = ir.IntType(64)


def _llvm_vector(dtype):
    """(scalar type, AVX2 vector type, its name suffix) for float64/float32."""
    if dtype == types.float64:
        return ir.DoubleType(), ir.VectorType(ir.DoubleType(), 4), "v4f64"
    return ir.FloatType(), ir.VectorType(ir.FloatType(), 8), "v8f32"


def _vector_load(builder, ptr, vty, align):
    v = builder.load(builder.bitcast(ptr, vty.as_pointer()))
    v.align = align
    return v


def _splat(builder, x, vty):
    undef = ir.Constant(vty, ir.Undefined)
    mask = ir.Constant(ir.VectorType(ir.IntType(32), vty.count), [0] * vty.count)
    return builder.shuffle_vector(builder.insert_element(undef, x, _I64(0)), undef, mask)


def prefetch_codegen(context, builder, signature, args):
    """Codegen of a prefetch intrinsic ``(arr, *indices)``: a software
    prefetch (``llvm.prefetch``, read, into all caches) of the element's
    cache line; no fault, no result."""
    ary = context.make_array(signature.args[0])(context, builder, args[0])
    ptr = cgutils.get_item_pointer(context, builder, signature.args[0], ary, list(args[1:]),
                                   wraparound=False)
    i8p = ir.IntType(8).as_pointer()
    i32 = ir.IntType(32)
    fn = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
        "llvm.prefetch.p0i8")
    builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
    return context.get_dummy_value()
