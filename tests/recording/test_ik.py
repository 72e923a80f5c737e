"""Inverse kinematics (training/recording/ik.py) on the synthetic world: known θ → landmarks → IK → compare."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from torch.func import jacfwd

from firmware_bridge.errors import UserError
from training.hand.angle_map import EMG2POSE_ANGLE_LIMITS, emg2pose_angles_to_mano_pose, mano_pose_to_emg2pose_angles
from training.hand.fk_numpy import forward_kinematics_np
from training.hand.fk_torch import HandForward
from training.hand.open_hand import open_hand_model
from training.hand.params import HandModelParams
from training.hand.skeleton import MANO_TO_MEDIAPIPE, MEDIAPIPE_TO_MANO, TIP_PARENTS
from training.recording.ik import HandIK, IkInputError
from training.recording.ik_chain import KinematicChain, rodrigues_and_right_jacobian
from training.recording.ik_init import matrix_to_axis_angle
from training.synth.motion import FINGER_DIP, FINGER_MCP, FINGER_PIP, HI, LO, THUMB, generate_motion

FLEXION = [*FINGER_MCP, *FINGER_PIP, *FINGER_DIP, THUMB[0], THUMB[2], THUMB[3]]


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """HandIK(threads=1) sets torch's threads process-wide: give the other tests theirs back."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def random_orientations(n: int, rng: np.random.Generator) -> np.ndarray:
    axis = rng.normal(size=(n, 3))
    return axis / np.linalg.norm(axis, axis=1, keepdims=True) * rng.uniform(0.0, 3.0, (n, 1))


def landmarks_of(hand: HandModelParams, theta: np.ndarray, orient: np.ndarray, rng: np.random.Generator, noise_m=0.0):
    """MediaPipe-order world landmarks: posed joints around the palm's centre (as MediaPipe puts its origin)."""
    posed = forward_kinematics_np(hand, theta, orient)
    posed = (
        posed - posed[:, [0, 1, 4, 7, 10]].mean(axis=1, keepdims=True) + rng.uniform(-0.01, 0.01, (len(theta), 1, 3))
    )
    posed = posed + rng.normal(0.0, noise_m, posed.shape)
    return posed[:, MANO_TO_MEDIAPIPE]


def random_poses(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    angles = rng.uniform(LO, HI, (n, 20))
    return angles, emg2pose_angles_to_mano_pose(angles)


def smooth_clip(seconds: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """30-fps angles and θ of the synthetic protocol's motion (the dynamic phase: fast, varied moves)."""
    motion = generate_motion(1.0, rng)
    start = motion.phases[1][1]
    times = np.arange(start, start + seconds, 1 / 30)
    angles = np.stack([np.interp(times, motion.time, motion.angles[:, k]) for k in range(20)], axis=1)
    return angles, emg2pose_angles_to_mano_pose(angles)


def blended_hand() -> HandModelParams:
    """A MANO-like hand: fingertips skinned over two joints, pose correctives and a non-zero hands_mean."""
    base = open_hand_model()
    rng = np.random.default_rng(3)
    weights = np.zeros((5, 16))
    for v, parent in enumerate(TIP_PARENTS):
        weights[v, parent] = 0.8
        weights[v, parent - 1] = 0.2
    return HandModelParams(
        kind="mano",
        joints_rest=base.joints_rest,
        joints_shapedirs=base.joints_shapedirs,
        tips_rest=base.tips_rest,
        tips_shapedirs=base.tips_shapedirs,
        tips_posedirs=rng.normal(0.0, 2e-4, (5, 3, 135)),
        tips_weights=weights,
        hands_mean=rng.normal(0.0, 0.1, 45),
    )


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.func's jvp decompositions use torch.jit.script
@pytest.mark.parametrize("kind", ["open", "blended"])
def test_closed_form_jacobian_equals_autograd_of_hand_forward(kind: str) -> None:
    hand = open_hand_model(1.05) if kind == "open" else blended_hand()
    hand.tips_posedirs = np.zeros_like(hand.tips_posedirs)  # the Jacobian leaves pose correctives out on purpose
    chain = KinematicChain(hand)
    forward = HandForward(hand).double()
    betas = torch.linspace(-1, 1, 10, dtype=torch.float64)
    rng = np.random.default_rng(0)
    theta = torch.as_tensor(random_poses(2, rng)[1]) + 0.05 * torch.randn(2, 45, dtype=torch.float64)
    orient = torch.as_tensor(random_orientations(2, rng))
    state = chain.forward(theta, orient, chain.rest(betas, 2))
    assert torch.allclose(state.points, forward(theta, orient, betas.expand(2, 10)), atol=1e-7)
    jac = chain.jacobian(state)
    for b in range(2):
        reference = jacfwd(lambda p: forward(p[None, :45], p[None, 45:], betas[None])[0].reshape(-1))(
            torch.cat([theta[b], orient[b]])
        )
        assert torch.allclose(jac[b], reference, atol=1e-6)


def test_noise_free_landmarks_give_back_the_pose_exactly_when_the_shape_is_known() -> None:
    rng = np.random.default_rng(1)
    hand = open_hand_model(1.08)
    angles, theta = random_poses(64, rng)
    ik = HandIK(hand)
    result = ik.fit(landmarks_of(hand, theta, random_orientations(64, rng), rng))
    assert np.abs(result.joints - forward_kinematics_np(hand, theta)).max() < 1e-5  # 0.01 mm
    assert np.degrees(np.abs(mano_pose_to_emg2pose_angles(result.theta) - angles)).max() < 0.05
    assert result.ik_error_mm.max() < 0.01


def test_scaled_hand_with_calibrated_shape_stays_within_5_mm_and_flexion_within_a_few_degrees() -> None:
    rng = np.random.default_rng(2)
    hand = open_hand_model(1.1)  # a subject 10 % larger than the model's mean hand
    angles, theta = random_poses(120, rng)
    landmarks = landmarks_of(hand, theta, random_orientations(120, rng), rng)
    ik = HandIK()
    ik.calibrate_shape(landmarks[:40])
    result = ik.fit(landmarks[40:])
    error_mm = np.linalg.norm(result.joints - forward_kinematics_np(hand, theta[40:]), axis=-1).mean(axis=1) * 1e3
    assert error_mm.mean() < 3.0 and error_mm.max() < 5.0  # measured 2.4 / 3.2 (the shape basis cannot be exact)
    flexion = np.degrees(np.abs(mano_pose_to_emg2pose_angles(result.theta) - angles[40:]))[:, FLEXION]
    assert flexion.mean() < 2.0 and np.percentile(flexion, 95) < 4.0  # measured 0.8 / 2.5


def test_shape_calibration_fits_a_larger_hand_far_better_than_the_mean_shape() -> None:
    rng = np.random.default_rng(4)
    hand = open_hand_model(1.12)
    _, theta = random_poses(60, rng)
    landmarks = landmarks_of(hand, theta, random_orientations(60, rng), rng, noise_m=0.002)
    truth = forward_kinematics_np(hand, theta)
    mean_shape = HandIK()
    calibrated = HandIK()
    betas = calibrated.calibrate_shape(landmarks)
    assert betas[0] > 1.0  # bigger: β0 is overall size, +1 ≈ +5 %
    errors = [np.linalg.norm(ik.fit(landmarks).joints - truth, axis=-1).mean() * 1e3 for ik in (mean_shape, calibrated)]
    assert errors[1] < 0.5 * errors[0]
    assert np.array_equal(calibrated.fit(landmarks[:1]).betas, betas)  # fixed for the session


def test_warm_start_tracks_consecutive_noisy_frames_better_than_cold_fits() -> None:
    rng = np.random.default_rng(5)
    hand = open_hand_model()
    _, theta = smooth_clip(4.0, rng)
    orient = np.tile([0.4, -1.1, 0.3], (len(theta), 1))
    landmarks = landmarks_of(hand, theta, orient, rng, noise_m=0.003)
    truth = forward_kinematics_np(hand, theta)
    ik = HandIK(hand)
    warm = np.concatenate([ik.fit_frame(frame).joints for frame in landmarks])
    cold = ik.fit(landmarks).joints
    warm_mm, cold_mm = (np.linalg.norm(j - truth, axis=-1).mean() * 1e3 for j in (warm, cold))
    assert warm_mm < 0.9 * cold_mm  # measured ≈ 3.0 vs 3.8 mm
    # no slower either: the closed-form guess is already within a step of the answer, so cold fits take about as
    # many iterations (measured 3.0 vs 3.1) — the warm start's gain is the temporal prior and skipping that guess
    iterations = np.mean([ik.fit_frame(frame).iterations[0] for frame in landmarks])
    assert iterations <= ik.fit(landmarks).iterations.mean() + 0.5


def test_fit_frame_recovers_after_the_pose_jumps() -> None:
    rng = np.random.default_rng(6)
    hand = open_hand_model()
    _, theta = random_poses(2, rng)
    orient = random_orientations(2, rng)
    landmarks = landmarks_of(hand, theta, orient, rng)
    ik = HandIK(hand)
    ik.fit_frame(landmarks[0])
    jumped = ik.fit_frame(landmarks[1])  # the warm start is far off: the closed-form guess takes over
    assert jumped.ik_error_mm[0] < 0.01


def test_joint_limits_hold_on_implausible_noisy_input() -> None:
    rng = np.random.default_rng(7)
    hand = open_hand_model()
    lo, hi = EMG2POSE_ANGLE_LIMITS[:, 0].astype(np.float64), EMG2POSE_ANGLE_LIMITS[:, 1].astype(np.float64)
    span = hi - lo
    angles = rng.uniform(lo - 0.6 * span, hi + 0.6 * span, (40, 20))  # fingers bent backwards, sideways, too far
    landmarks = landmarks_of(hand, emg2pose_angles_to_mano_pose(angles), random_orientations(40, rng), rng, 0.005)
    ik = HandIK(hand)
    fitted = mano_pose_to_emg2pose_angles(ik.fit(landmarks).theta)
    assert np.all(fitted >= lo - 1e-9) and np.all(fitted <= hi + 1e-9)
    for frame in landmarks[:10]:
        one = mano_pose_to_emg2pose_angles(ik.fit_frame(frame).theta)[0]
        assert np.all(one >= lo - 1e-9) and np.all(one <= hi + 1e-9)


def test_unobservable_twists_stay_at_zero() -> None:
    """A DIP's twist moves no landmark; the anatomical-axes prior keeps θ in the 20 emg2pose DOFs' span."""
    rng = np.random.default_rng(8)
    hand = open_hand_model()
    _, theta = random_poses(30, rng)
    landmarks = landmarks_of(hand, theta, random_orientations(30, rng), rng, noise_m=0.003)
    fitted = HandIK(hand).fit(landmarks).theta
    in_span = emg2pose_angles_to_mano_pose(mano_pose_to_emg2pose_angles(fitted))
    assert np.abs(fitted - in_span).max() < 0.15  # noise may bend a hinge sideways a little, no free spinning


def test_result_follows_the_session_contract() -> None:
    """joints = HandForward(θ, β) canonical (hands_mean included), fitted = posed + translation, MANO order."""
    rng = np.random.default_rng(9)
    hand = blended_hand()
    _, theta = random_poses(5, rng)
    orient = random_orientations(5, rng)
    landmarks = landmarks_of(hand, theta, orient, rng)
    result = HandIK(hand).fit(landmarks)
    forward = HandForward(hand).double()
    fitted_theta = torch.as_tensor(result.theta)
    canonical = forward(fitted_theta).numpy()
    posed = forward(fitted_theta, torch.as_tensor(result.global_orient)).numpy()
    assert result.theta.shape == (5, 45) and result.joints.shape == (5, 21, 3) and result.betas.shape == (10,)
    assert np.allclose(result.joints, canonical, atol=1e-6)
    assert np.allclose(result.fitted, posed + result.translation[:, None], atol=1e-6)
    error = np.linalg.norm(result.fitted - landmarks[:, MEDIAPIPE_TO_MANO], axis=-1).mean(axis=1) * 1e3
    assert np.allclose(result.ik_error_mm, error) and error.max() < 1.0  # pose correctives: Jacobian approximate
    one = result.frame(2)
    assert one.theta.shape == (1, 45) and np.array_equal(one.joints[0], result.joints[2])


def test_rotation_matrices_convert_back_to_axis_angle_at_every_angle() -> None:
    rng = np.random.default_rng(11)
    r = random_orientations(500, rng) * np.pi / 3.0  # up to π
    r[:3] = [[0.0, 0.0, 0.0], [np.pi, 0.0, 0.0], [0.0, 1e-9, 0.0]]
    rot, _ = rodrigues_and_right_jacobian(torch.as_tensor(r))
    again, _ = rodrigues_and_right_jacobian(matrix_to_axis_angle(rot))
    assert torch.allclose(again, rot, atol=1e-12)


def test_shape_stays_fixed_when_shape_fitting_is_off() -> None:
    rng = np.random.default_rng(12)
    _, theta = random_poses(10, rng)
    landmarks = landmarks_of(open_hand_model(1.1), theta, random_orientations(10, rng), rng)
    ik = HandIK(fit_shape=False)
    assert np.array_equal(ik.calibrate_shape(landmarks), np.zeros(10))
    assert np.array_equal(ik.fit(landmarks).betas, np.zeros(10))


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        (np.zeros((20, 3)), ["landmarks", "(21, 3)", "(20, 3)"]),
        (np.zeros((21, 2)), ["landmarks", "(21, 2)"]),
        (np.zeros((2, 21, 3)), ["landmarks", "(2, 21, 3)"]),
        (np.full((21, 3), np.nan), ["landmarks", "NaN"]),
        (np.ones((21, 3)) * np.arange(21)[:, None] * 10.0, ["landmarks", "metres"]),
    ],
)
def test_bad_frames_raise_an_error_naming_the_array_and_its_shape(bad: np.ndarray, words: list[str]) -> None:
    ik = HandIK()
    with pytest.raises(IkInputError) as caught:
        ik.fit_frame(bad)
    assert isinstance(caught.value, UserError) and isinstance(caught.value, ValueError)
    for word in words:
        assert word in str(caught.value)


def test_batch_with_a_nan_frame_names_the_frame() -> None:
    batch = np.zeros((4, 21, 3)) + np.linspace(0, 0.1, 21)[:, None]
    batch[2, 5, 1] = np.nan
    with pytest.raises(IkInputError, match=r"landmarks: shape \(4, 21, 3\): NaN or inf values in frame\(s\) 2"):
        HandIK().fit(batch)


def test_a_nan_frame_does_not_poison_the_warm_start() -> None:
    rng = np.random.default_rng(10)
    hand = open_hand_model()
    _, theta = smooth_clip(0.3, rng)
    landmarks = landmarks_of(hand, theta, np.tile([0.2, 0.5, -0.3], (len(theta), 1)), rng, noise_m=0.003)
    broken = landmarks[3].copy()
    broken[7] = np.nan
    with_nan, without = HandIK(hand), HandIK(hand)
    for i, frame in enumerate(landmarks):
        if i == 4:
            with pytest.raises(IkInputError):
                with_nan.fit_frame(broken)
        a, b = with_nan.fit_frame(frame), without.fit_frame(frame)
        assert np.array_equal(a.theta, b.theta)


def test_ik_benchmark_prints_accuracy_and_speed_side_by_side(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from benchmark_scripts import load_benchmark

    bench = load_benchmark("bench_ik")
    monkeypatch.setattr("sys.argv", ["bench_ik.py", "--subjects", "1", "--seconds", "3"])
    bench.main()
    out = capsys.readouterr().out
    for row in ("joint mean mm", "flexion p95 deg", "fit_frame fps", "batch fps (cold)", "pinky mm"):
        assert row in out
    noise_free = float(next(line for line in out.splitlines() if line.startswith("joint mean mm")).split()[3])
    assert noise_free < 5.0


def test_long_batches_are_solved_in_chunks_with_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(13)
    hand = open_hand_model()
    _, theta = random_poses(10, rng)
    landmarks = landmarks_of(hand, theta, random_orientations(10, rng), rng, noise_m=0.002)
    ik = HandIK(hand)
    whole = ik.fit(landmarks)
    in_one = ik.fit(landmarks, warm_start=whole)
    monkeypatch.setattr("training.recording.ik.FIT_CHUNK", 4)
    chunked = ik.fit(landmarks, warm_start=whole)  # 4 + 4 + 2 frames, each with its own warm starts
    assert chunked.theta.shape == (10, 45) and chunked.iterations.shape == (10,)
    assert np.allclose(chunked.theta, in_one.theta, atol=1e-9)
    assert np.array_equal(chunked.iterations, in_one.iterations)
