"""Two machine operations numba does not expose, for the merge pass (`bpe_compact`): a population count
and the compaction of 32 uint16 tokens in one vector instruction.

Where the CPU has AVX-512 VBMI2 (Intel Ice Lake and later, AMD Zen 4 and later), LLVM turns
`compress_block` into one `vpcompressw`, and a 64-token block of a pass is compacted in a few cycles
instead of one memmove per merged pair. Elsewhere LLVM expands it lane by lane, correct but no faster
than the memmove path, so the passes take it only where VECTOR_COMPRESS says so.

numba's disk cache of a function is keyed on its own module's source file, not on the intrinsics it
calls: after changing this module, touch bpe_compact.py (or delete its __pycache__) before measuring.
"""

import llvmlite.binding as llvm
from llvmlite import ir
from numba.core import cgutils, config, types
from numba.core.errors import TypingError
from numba.extending import intrinsic

_LANES = 32


def _check_tokens(tokens) -> None:
    """The intrinsics read and write raw memory: only a writable, contiguous uint16 vector will do."""
    if not (isinstance(tokens, types.Array) and tokens.ndim == 1 and tokens.layout == "C"
            and tokens.dtype == types.uint16 and tokens.mutable):
        raise TypingError(f"a writable C-contiguous 1-D uint16 array is needed, not {tokens}")


def _compiles_to_vpcompressw() -> bool:
    """Whether numba's target has a register compress of 16-bit lanes, with the features numba itself
    compiles for (NUMBA_CPU_FEATURES where set, `generic` meaning none, else the host's), and whether
    LLVM lowers the intrinsic to it (x86 from LLVM 20; measured with 22)."""
    if llvm.llvm_version_info < (20,):
        return False
    features = config.CPU_FEATURES
    if features is None:
        try:
            features = llvm.get_host_cpu_features().flatten()
        except RuntimeError:  # llvmlite cannot read this CPU's features: take the pass that needs none
            return False
    vbmi2 = False
    for feature in features.split(","):  # the last mention wins, as in LLVM
        if feature[1:] == "avx512vbmi2":
            vbmi2 = feature[0] == "+"
    return vbmi2


VECTOR_COMPRESS = _compiles_to_vpcompressw()


@intrinsic
def compress_block(typingctx, tokens, at, write, z, merged, kept):
    """Write the 32 tokens at tokens[at] packed from tokens[write] on: z in each lane whose bit is set in
    `merged`, only the lanes whose bit is set in `kept`. All 32 lanes are stored, so tokens[write:write
    + 32] past the kept ones holds garbage: safe in place when write <= at (the block is loaded first)
    and what lies there is later overwritten."""

    _check_tokens(tokens)
    if not all(isinstance(x, types.Integer) for x in (at, write, z, merged, kept)):
        raise TypingError("compress_block takes integer positions, z and bit masks")

    def codegen(context, builder, signature, args):
        array = context.make_array(signature.args[0])(context, builder, args[0])
        at, write = (context.cast(builder, args[i], signature.args[i], types.int64) for i in (1, 2))
        z = context.cast(builder, args[3], signature.args[3], types.uint16)
        merged, kept = (context.cast(builder, args[i], signature.args[i], types.uint64) for i in (4, 5))
        lanes = ir.VectorType(ir.IntType(16), _LANES)
        masks = ir.VectorType(ir.IntType(1), _LANES)
        block = builder.load(builder.bitcast(builder.gep(array.data, [at]), lanes.as_pointer()), align=2)
        z_lanes = builder.shuffle_vector(
            builder.insert_element(ir.Constant(lanes, None), z, ir.Constant(ir.IntType(32), 0)),
            ir.Constant(lanes, None), ir.Constant(ir.VectorType(ir.IntType(32), _LANES), [0] * _LANES))
        values = builder.select(builder.bitcast(builder.trunc(merged, ir.IntType(_LANES)), masks), z_lanes, block)
        kept_lanes = builder.bitcast(builder.trunc(kept, ir.IntType(_LANES)), masks)
        target = builder.gep(array.data, [write])
        if llvm.llvm_version_info >= (19,):
            # In a register, then one full store: a compress straight to memory is microcoded on Zen 4.
            compress = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(lanes, [lanes, masks, lanes]), "llvm.experimental.vector.compress.v32i16")
            packed = builder.call(compress, [values, kept_lanes, ir.Constant(lanes, None)])
            builder.store(packed, builder.bitcast(target, lanes.as_pointer()), align=2)
        else:
            store = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), [lanes, target.type, masks]),
                "llvm.masked.compressstore.v32i16")
            builder.call(store, [values, target, kept_lanes])
        return context.get_dummy_value()

    return types.void(tokens, at, write, z, merged, kept), codegen


@intrinsic
def popcount(typingctx, bits):
    """The set bits of a uint64."""

    if not isinstance(bits, types.Integer):
        raise TypingError(f"popcount counts the bits of an integer, not {bits}")

    def codegen(context, builder, signature, args):
        count = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.IntType(64), [ir.IntType(64)]), "llvm.ctpop.i64")
        return builder.call(count, [context.cast(builder, args[0], signature.args[0], types.uint64)])

    return types.int64(bits), codegen


@intrinsic
def move_tokens(typingctx, tokens, source, target, length):
    """tokens[target:target + length] = tokens[source:source + length] (C's memmove, as an LLVM
    intrinsic rather than a ctypes pointer, so that the functions calling it can be cached on disk)."""

    _check_tokens(tokens)
    if not all(isinstance(x, types.Integer) for x in (source, target, length)):
        raise TypingError("move_tokens takes integer positions and length")

    def codegen(context, builder, signature, args):
        array = context.make_array(signature.args[0])(context, builder, args[0])
        source, target, length = (context.cast(builder, args[i], signature.args[i], types.int64) for i in (1, 2, 3))
        # numba's helper names the intrinsic as this llvmlite's LLVM wants it (typed or opaque pointers)
        cgutils.raw_memmove(builder, builder.gep(array.data, [target]), builder.gep(array.data, [source]), length, 2)
        return context.get_dummy_value()

    return types.void(tokens, source, target, length), codegen
