"""Data parallelism: the sharded step on 8 fake CPU devices equals the single-device step,
for the GAN pair and for a family of three players (tests/train/three_players.py).

The pytest process has already initialised JAX with one CPU device, so the 8-device checks
run in a subprocess started with XLA_FLAGS=--xla_force_host_platform_device_count=8. The
script reports its measurements as one JSON line, and the test asserts on them.
"""

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import parallel

_SCRIPT = textwrap.dedent(
    """
    import json
    import sys

    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    from gen_jax import losses, parallel
    from gen_jax.data import epoch_batch_indices
    from gen_jax.models.dcgan import TinyDCGANDiscriminator, TinyDCGANGenerator
    from gen_jax.train import (
        PlayerSpec,
        create_gan_state,
        gan_phases,
        make_gan_step,
        make_train_chunk,
        normal_latent,
    )

    sys.path.insert(0, "tests/train")
    import three_players as bigan

    B, N_DATA, LATENT = 16, 64, 8
    out = {"device_count": jax.device_count()}
    mesh = parallel.make_mesh()
    out["mesh_size"] = int(mesh.shape[parallel.DATA_AXIS])

    # Only the init's draws use the classic threefry (much faster to compile on XLA:CPU).
    with jax.threefry_partitionable(False):
        tx = optax.adam(2e-4, b1=0.5)
        state = create_gan_state(
            jax.random.PRNGKey(0),
            {
                "g": PlayerSpec(
                    TinyDCGANGenerator(), tx, (jnp.zeros((B, LATENT)),), use_ema=True
                ),
                "d": PlayerSpec(TinyDCGANDiscriminator(), tx, (jnp.zeros((B, 28, 28, 1)),)),
            },
        )
    step = make_gan_step(
        gan_phases(
            losses.non_saturating_generator_loss,
            losses.minimax_discriminator_loss,
            normal_latent(LATENT),
        )
    )

    def max_diff(a, b):
        return max(
            float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
            for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))
        )

    def max_rel_diff(a, b):
        return max(
            float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))
                         / (1e-5 + np.abs(np.asarray(y, np.float64)))))
            for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))
        )

    def all_replicated(tree):
        return all(x.sharding.is_fully_replicated for x in jax.tree.leaves(tree))

    def copy(tree):
        return jax.tree.map(jnp.copy, tree)

    # One jitted step: single device against replicated state + batch sharded on axis 1.
    real = jax.random.uniform(jax.random.PRNGKey(1), (1, B, 28, 28, 1), minval=-1, maxval=1)
    batch = {"real": real}
    jstep = jax.jit(step)
    single, single_metrics = jstep(copy(state), batch)
    sharded_batch = parallel.shard_batch(batch, mesh, batch_axis=1)
    x = sharded_batch["real"]
    out["batch_sharded"] = (not x.sharding.is_fully_replicated) and all(
        s.data.shape == (1, B // 8, 28, 28, 1) for s in x.addressable_shards
    )
    multi, multi_metrics = jstep(parallel.replicate(state, mesh), sharded_batch)
    out["step_state_max_diff"] = max_diff(multi, single)
    out["step_state_max_rel_diff"] = max_rel_diff(multi, single)
    out["step_metrics_max_diff"] = max_diff(multi_metrics, single_metrics)
    out["step_state_replicated"] = all_replicated(multi)
    out["step_params_changed"] = max_diff(single["g"].params, state["g"].params) > 0

    # The three-player family (G, E, D; G and E updated jointly), n_critic = 2.
    tri = bigan.make_state(batch=B)
    tri_step = jax.jit(make_gan_step(bigan.phases(), n_critic=2))
    tri_batch = {"real": bigan.sample_data(jax.random.PRNGKey(3), 2 * B).reshape(2, B, 2)}
    single, single_metrics = tri_step(copy(tri), tri_batch)
    multi, multi_metrics = tri_step(
        parallel.replicate(tri, mesh), parallel.shard_batch(tri_batch, mesh, batch_axis=1)
    )
    out["tri_state_max_diff"] = max_diff(multi, single)
    out["tri_state_max_rel_diff"] = max_rel_diff(multi, single)
    out["tri_metrics_max_diff"] = max_diff(multi_metrics, single_metrics)
    out["tri_state_replicated"] = all_replicated(multi)
    out["tri_players_changed"] = [
        max_diff(single[n].params, tri[n].params) > 0 for n in ("g", "e", "d")
    ]

    # Two fused steps drawing batches on the device: with and without the mesh.
    data = jax.random.uniform(jax.random.PRNGKey(2), (N_DATA, 28, 28, 1), minval=-1, maxval=1)

    def batch_fn(data, key, step):
        return {"real": data[epoch_batch_indices(key, step, N_DATA, B)][None]}

    plain = make_train_chunk(step, batch_fn, 2, unroll=1)
    meshed = make_train_chunk(step, batch_fn, 2, mesh=mesh, unroll=1)
    single, single_metrics = plain(copy(state), data)
    multi, multi_metrics = meshed(parallel.replicate(state, mesh), parallel.replicate(data, mesh))
    out["chunk_steps"] = [int(single.step), int(multi.step)]
    out["chunk_state_max_diff"] = max_diff(multi, single)
    out["chunk_state_max_rel_diff"] = max_rel_diff(multi, single)
    out["chunk_metrics_max_diff"] = max_diff(multi_metrics, single_metrics)
    out["chunk_state_replicated"] = all_replicated(multi)

    # A batch that does not split over 8 devices is refused, naming the shape.
    try:
        parallel.shard_batch({"real": jnp.zeros((1, 12, 2))}, mesh, batch_axis=1)
        out["indivisible_error"] = None
    except ValueError as e:
        out["indivisible_error"] = str(e)

    print("RESULT " + json.dumps(out))
    """
)

TOL = 1e-5


def _run_on_eight_devices() -> dict:
    env = dict(os.environ)
    # 8 fake CPU devices; and a cheaper LLVM pipeline, which halves the compile time of the
    # four DCGAN programs. Both sides of every comparison are compiled with the same flags.
    env["XLA_FLAGS"] = " ".join(
        [
            env.get("XLA_FLAGS", ""),
            "--xla_force_host_platform_device_count=8",
            "--xla_backend_optimization_level=0",
            "--xla_llvm_disable_expensive_passes=true",
        ]
    ).strip()
    env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, (
        f"8-device script failed (rc {proc.returncode}):\n{proc.stdout}\n{proc.stderr[-5000:]}"
    )
    return json.loads(lines[-1][len("RESULT ") :])


def test_sharded_step_and_chunk_equal_single_device_on_eight_devices():
    # One test for the one (expensive) subprocess, so pytest-xdist never runs it twice.
    r = _run_on_eight_devices()
    assert r["device_count"] == 8 and r["mesh_size"] == 8, r
    assert r["batch_sharded"], "shard_batch did not split axis 1 into 8 shards of 2"

    # The step. Batch-norm statistics and loss means are reductions over the global batch,
    # summed in a different order across devices: equal up to float rounding.
    assert r["step_params_changed"]
    assert r["step_state_max_diff"] <= TOL or r["step_state_max_rel_diff"] <= TOL, r
    assert r["step_metrics_max_diff"] <= TOL, r
    assert r["step_state_replicated"], "the sharded step's output state is not replicated"

    # Two fused steps drawing their batches on the device, constrained to the mesh.
    assert r["chunk_steps"] == [2, 2], r
    assert r["chunk_state_max_diff"] <= TOL or r["chunk_state_max_rel_diff"] <= TOL, r
    assert r["chunk_metrics_max_diff"] <= TOL, r
    assert r["chunk_state_replicated"], "the sharded chunk's output state is not replicated"

    # The three-player family: every player moved, and the sharded step is the same step.
    assert r["tri_players_changed"] == [True, True, True], r
    assert r["tri_state_max_diff"] <= TOL or r["tri_state_max_rel_diff"] <= TOL, r
    assert r["tri_metrics_max_diff"] <= TOL, r
    assert r["tri_state_replicated"], "the sharded three-player step's state is not replicated"

    message = r["indivisible_error"]
    assert message is not None, "shard_batch accepted a batch of 12 on 8 devices"
    assert "(1, 12, 2)" in message and "8 devices" in message


# --- In-process, on the one device this process has. -----------------------------------------


def test_one_device_mesh_and_shardings():
    mesh = parallel.make_mesh()
    assert mesh.axis_names == (parallel.DATA_AXIS,)
    assert mesh.shape[parallel.DATA_AXIS] == jax.device_count()
    assert parallel.replicated(mesh).is_fully_replicated
    spec = parallel.batch_sharding(mesh, batch_axis=1).spec
    assert tuple(spec) == (None, parallel.DATA_AXIS)


def test_replicate_and_shard_keep_values():
    mesh = parallel.make_mesh(jax.devices()[:1])
    tree = {"a": jnp.arange(6.0).reshape(2, 3), "b": jnp.ones((3,), jnp.int32)}
    for placed in (parallel.replicate(tree, mesh), parallel.shard_batch(tree, mesh)):
        jax.tree.map(np.testing.assert_array_equal, placed, tree)


def test_constrain_batch_without_mesh_is_identity():
    tree = {"real": jnp.zeros((1, 4, 2))}
    assert parallel.constrain_batch(tree, None) is tree
