"""Explicit Runge-Kutta methods as data: a Butcher tableau, an order and a dense output.

One generic step (:meth:`odebench.ode._core.Integrator.step`) serves every method here. A tableau's dense
output is stored as a matrix ``dense`` of polynomial coefficients such that, inside a
step from ``t0`` of size ``h``,

    y(t0 + theta h) = y0 + h * sum_i k_i * sum_j dense[i, j] * theta**(j + 1)

where ``k`` are the stages, extended by ``f1 = f(t0 + h, y1)`` for methods without the
FSAL property (for FSAL methods ``f1`` is the last stage already).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.polynomial import polynomial as P


class SolverNameError(ValueError):
    """An unknown solver name; the message lists the valid ones."""


@dataclass(frozen=True, eq=False)
class ButcherTableau:
    """An explicit Runge-Kutta method.

    Attributes:
        name: the solver name users pass (``"dopri5"``).
        order: order of the propagated solution.
        c: nodes, length ``s`` (``c[0] == 0``).
        a: strictly lower triangular stage matrix, shape ``(s, s)``.
        b: solution weights, length ``s``.
        b_err: ``b - b_embedded`` (the error estimator), or ``None`` for fixed-step methods.
        error_order: order of the embedded solution + 1 (the step-size exponent denominator).
        dense: dense-output coefficients, shape ``(s + (0 if fsal else 1), degree)``.
        dense_order: the order of accuracy of the dense output.
        exact_save_times: default for hitting save times by stepping to them rather than
            interpolating (true where the interpolant is much weaker than the method).
        citation: where the coefficients come from.
    """

    name: str
    order: int
    c: np.ndarray
    a: np.ndarray
    b: np.ndarray
    b_err: np.ndarray | None
    error_order: int | None
    dense: np.ndarray
    dense_order: int
    exact_save_times: bool = False
    citation: str = ""
    fsal: bool = field(init=False)

    def __post_init__(self) -> None:
        s = len(self.c)
        fsal = bool(
            s > 1 and self.c[-1] == 1.0 and np.array_equal(self.a[-1, : s - 1], self.b[: s - 1]) and self.b[-1] == 0.0
        )
        object.__setattr__(self, "fsal", fsal)
        expected_rows = s if fsal else s + 1
        if self.dense.shape[0] != expected_rows:
            raise ValueError(f"{self.name}: dense output needs {expected_rows} rows, got {self.dense.shape[0]}")

    @property
    def stages(self) -> int:
        return len(self.c)

    @property
    def adaptive(self) -> bool:
        return self.b_err is not None


def _lower(rows: list[list[float]]) -> np.ndarray:
    """Stage matrix from its rows below the diagonal (row i has i entries)."""
    s = len(rows) + 1
    a = np.zeros((s, s))
    for i, row in enumerate(rows, start=1):
        a[i, : len(row)] = row
    return a


def _hermite_dense(b: np.ndarray, fsal: bool) -> np.ndarray:
    """Cubic Hermite interpolant through y0, y1, f0 = k_1 and f1, as dense coefficients.

    y(theta) = y0 + h [h01(theta) sum_i b_i k_i + h10(theta) f0 + h11(theta) f1] with
    h01 = 3t^2 - 2t^3, h10 = t - 2t^2 + t^3, h11 = -t^2 + t^3 (third-order accurate).
    """
    s = len(b)
    rows = s if fsal else s + 1
    dense = np.zeros((rows, 3))
    dense[:s] += np.outer(b, [0.0, 3.0, -2.0])
    dense[0] += [1.0, -2.0, 1.0]
    dense[rows - 1] += [0.0, -1.0, 1.0]  # f1: the FSAL stage, or the extra row
    return dense


def _fixed(name: str, order: int, c, rows, b, citation: str) -> ButcherTableau:
    b = np.asarray(b, dtype=np.float64)
    return ButcherTableau(
        name=name,
        order=order,
        c=np.asarray(c, dtype=np.float64),
        a=_lower(rows),
        b=b,
        b_err=None,
        error_order=None,
        dense=_hermite_dense(b, fsal=False),
        dense_order=min(order, 3),
        exact_save_times=True,
        citation=citation,
    )


EULER = _fixed("euler", 1, [0.0], [], [1.0], "Euler (1768), forward Euler method.")
MIDPOINT = _fixed("midpoint", 2, [0.0, 0.5], [[0.5]], [0.0, 1.0], "Explicit midpoint rule (Runge 1895).")
RK4 = _fixed(
    "rk4",
    4,
    [0.0, 0.5, 0.5, 1.0],
    [[0.5], [0.0, 0.5], [0.0, 0.0, 1.0]],
    [1 / 6, 1 / 3, 1 / 3, 1 / 6],
    "Classical Runge-Kutta method (Kutta 1901).",
)

_BOSH3_B = np.array([2 / 9, 1 / 3, 4 / 9, 0.0])
BOSH3 = ButcherTableau(
    name="bosh3",
    order=3,
    c=np.array([0.0, 1 / 2, 3 / 4, 1.0]),
    a=_lower([[1 / 2], [0.0, 3 / 4], [2 / 9, 1 / 3, 4 / 9]]),
    b=_BOSH3_B,
    b_err=_BOSH3_B - np.array([7 / 24, 1 / 4, 1 / 3, 1 / 8]),
    error_order=3,
    dense=_hermite_dense(_BOSH3_B, fsal=True),
    dense_order=3,
    citation="Bogacki and Shampine, 'A 3(2) pair of Runge-Kutta formulas', Appl. Math. Lett. 2(4), 1989.",
)


def _dopri5() -> ButcherTableau:
    b = np.array([35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0])
    # Shampine's embedded solution ("Some practical Runge-Kutta formulas", Math. Comp. 46,
    # 1986), the error estimator torchdiffeq and diffrax use too, so step sequences compare.
    b_hat = np.array([1951 / 21600, 0, 22642 / 50085, 451 / 720, -12231 / 42400, 649 / 6300, 1 / 60])
    # Continuous extension of Dormand and Prince (Hairer, Norsett, Wanner I, II.6):
    # y(theta) = y0 + theta r2 + theta(1-theta) [r3 + theta (r4 + (1-theta) r5)] with
    # r2 = h b.k, r3 = h(e1 - b).k, r4 = h(2b - e1 - e7).k, r5 = h d.k; expanded in theta.
    d = np.array(
        [
            -12715105075 / 11282082432,
            0,
            87487479700 / 32700410799,
            -10690763975 / 1880347072,
            701980252875 / 199316789632,
            -1453857185 / 822651844,
            69997945 / 29380423,
        ]
    )
    e1, e7 = np.eye(7)[0], np.eye(7)[6]
    dense = np.stack(
        [e1, 3 * b - 2 * e1 - e7 + d, -(2 * b - e1 - e7) - 2 * d, d],
        axis=1,
    )
    return ButcherTableau(
        name="dopri5",
        order=5,
        c=np.array([0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1, 1]),
        a=_lower(
            [
                [1 / 5],
                [3 / 40, 9 / 40],
                [44 / 45, -56 / 15, 32 / 9],
                [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729],
                [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656],
                [35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84],
            ]
        ),
        b=b,
        b_err=b - b_hat,
        error_order=5,
        dense=dense,
        dense_order=4,
        citation="Dormand and Prince, 'A family of embedded Runge-Kutta formulae', J. Comp. Appl. Math. 6, 1980.",
    )


def _tsit5() -> ButcherTableau:
    b = np.array(
        [
            0.09646076681806523,
            0.01,
            0.4798896504144996,
            1.379008574103742,
            -3.290069515436081,
            2.324710524099774,
            0.0,
        ]
    )
    b_hat = np.array(
        [
            0.09468075576583945,
            0.009183565540343254,
            0.4877705284247616,
            1.234297566930479,
            -2.7077123499835256,
            1.866628418170587,
            1 / 66,
        ]
    )
    # Tsitouras' interpolant, written as products of factors; expanded to coefficients.
    factors: list[tuple[float, list[list[float]]]] = [
        (-1.0530884977290216, [[0, 1], [-1.3299890189751412, 1], [0.7139816917074209, -1.4364028541716351, 1]]),
        (0.1017, [[0, 0, 1], [1.2949852507374631, -2.1966568338249754, 1]]),
        (2.490627285651252793, [[0, 0, 1], [1.57803468208092486, -2.38535645472061657, 1]]),
        (-16.54810288924490272, [[0, 0, 1], [-1.21712927295533244, 1], [-0.61620406037800089, 1]]),
        (47.37952196281928122, [[0, 0, 1], [-1.203071208372362603, 1], [-0.658047292653547382, 1]]),
        (-34.87065786149660974, [[0, 0, 1], [-1.2, 1], [-0.666666666666666667, 1]]),
        (2.5, [[0, 0, 1], [-1, 1], [-0.6, 1]]),
    ]
    dense = np.zeros((7, 4))
    for i, (scale, polys) in enumerate(factors):
        poly = np.array([scale])
        for q in polys:
            poly = P.polymul(poly, q)
        poly = np.pad(poly, (0, 5 - len(poly)))
        dense[i] = poly[1:5]  # no constant term
    a = _lower(
        [
            [0.161],
            [-0.008480655492356989, 0.335480655492357],
            [2.897153057105493, -6.359448489975075, 4.3622954328695815],
            [5.325864828439257, -11.748883564062828, 7.4955393428898365, -0.09249506636175525],
            [5.86145544294642, -12.92096931784711, 8.159367898576159, -0.071584973281401, -0.028269050394068383],
            list(b[:6]),
        ]
    )
    return ButcherTableau(
        name="tsit5",
        order=5,
        c=np.array([0, 0.161, 0.327, 0.9, 0.9800255409045097, 1, 1]),
        a=a,
        b=b,
        b_err=b - b_hat,
        error_order=5,
        dense=dense,
        dense_order=4,
        citation="Tsitouras, 'Runge-Kutta pairs of order 5(4) satisfying only the first column "
        "simplifying assumption', Comput. Math. Appl. 62(2), 2011.",
    )


def _dopri8() -> ButcherTableau:
    rows = [
        [1 / 18],
        [1 / 48, 1 / 16],
        [1 / 32, 0, 3 / 32],
        [5 / 16, 0, -75 / 64, 75 / 64],
        [3 / 80, 0, 0, 3 / 16, 3 / 20],
        [29443841 / 614563906, 0, 0, 77736538 / 692538347, -28693883 / 1125000000, 23124283 / 1800000000],
        [
            16016141 / 946692911,
            0,
            0,
            61564180 / 158732637,
            22789713 / 633445777,
            545815736 / 2771057229,
            -180193667 / 1043307555,
        ],
        [
            39632708 / 573591083,
            0,
            0,
            -433636366 / 683701615,
            -421739975 / 2616292301,
            100302831 / 723423059,
            790204164 / 839813087,
            800635310 / 3783071287,
        ],
        [
            246121993 / 1340847787,
            0,
            0,
            -37695042795 / 15268766246,
            -309121744 / 1061227803,
            -12992083 / 490766935,
            6005943493 / 2108947869,
            393006217 / 1396673457,
            123872331 / 1001029789,
        ],
        [
            -1028468189 / 846180014,
            0,
            0,
            8478235783 / 508512852,
            1311729495 / 1432422823,
            -10304129995 / 1701304382,
            -48777925059 / 3047939560,
            15336726248 / 1032824649,
            -45442868181 / 3398467696,
            3065993473 / 597172653,
        ],
        [
            185892177 / 718116043,
            0,
            0,
            -3185094517 / 667107341,
            -477755414 / 1098053517,
            -703635378 / 230739211,
            5731566787 / 1027545527,
            5232866602 / 850066563,
            -4093664535 / 808688257,
            3962137247 / 1805957418,
            65686358 / 487910083,
        ],
        [
            403863854 / 491063109,
            0,
            0,
            -5068492393 / 434740067,
            -411421997 / 543043805,
            652783627 / 914296604,
            11173962825 / 925320556,
            -13158990841 / 6184727034,
            3936647629 / 1978049680,
            -160528059 / 685178525,
            248638103 / 1413531060,
            0,
        ],
    ]
    b = np.array(
        [
            14005451 / 335480064,
            0,
            0,
            0,
            0,
            -59238493 / 1068277825,
            181606767 / 758867731,
            561292985 / 797845732,
            -1041891430 / 1371343529,
            760417239 / 1151165299,
            118820643 / 751138087,
            -528747749 / 2220607170,
            1 / 4,
            0,
        ]
    )
    b_hat = np.array(
        [
            13451932 / 455176623,
            0,
            0,
            0,
            0,
            -808719846 / 976000145,
            1757004468 / 5645159321,
            656045339 / 265891186,
            -3867574721 / 1518517206,
            465885868 / 322736535,
            53011238 / 667516719,
            2 / 45,
            0,
            0,
        ]
    )
    rows.append(list(b[:13]))  # the FSAL stage f(t1, y1)
    # Dense output: a sixth-degree polynomial in theta (coefficients of theta^5 .. theta^0
    # of b_i(theta) / theta per stage, as in torchdiffeq's and diffrax's dopri8); its local
    # error is O(h^6) (measured in the tests), i.e. a fifth-order interpolant.
    coeffs = np.zeros((14, 6))
    coeffs[0] = [-6.3448349392860401388, 22.1396504998094068976, -30.0610568289666450593,
                 19.9990069333683970610, -6.6910181737837595697, 1.0]  # fmt: skip
    coeffs[5] = [-39.6107919852202505218, 116.4422149550342161651, -121.4999627731334642623,
                 52.2273532792945524050, -7.6142658045872677172, 0]  # fmt: skip
    coeffs[6] = [20.3761213808791436958, -67.1451318825957197185, 83.1721004639847717481,
                 -46.8919164181093621583, 10.7281392630428866124, 0]  # fmt: skip
    coeffs[7] = [7.3347098826795362023, -16.5672243527496524646, 9.5724507555993664382,
                 -0.1890893225010595467, 0.5526637063753648783, 0]  # fmt: skip
    coeffs[8] = [32.8801774352459155182, -89.9916014847245016028, 87.8406057677205645007,
                 -35.7075975946222072821, 4.2186562625665153803, 0]  # fmt: skip
    coeffs[9] = [-10.1588990526426760954, 22.6237489648532849093, -17.4152107770762969005,
                 6.2736448083240352160, -0.6627209125361597559, 0]  # fmt: skip
    coeffs[10] = [-12.5401268098782561200, 32.2362340167355370113, -28.5903289514790976966,
                  10.3160881272450748458, -1.2636789001135462218, 0]  # fmt: skip
    coeffs[11] = [29.5553001484516038033, -82.1020315488359848644, 81.6630950584341412934,
                  -34.7650769866611817349, 5.4106037898590422230, 0]  # fmt: skip
    coeffs[12] = [-41.7923486424390588923, 116.2662185791119533462, -114.9375291377009418170,
                  47.7457971078225540396, -7.0321379067945741781, 0]  # fmt: skip
    coeffs[13] = [20.3006925822100825485, -53.9020777466385396792, 50.2558364226176017553,
                  -19.0082099341608028453, 2.3537586759714983486, 0]  # fmt: skip
    dense = coeffs[:, ::-1].copy()  # theta^1 .. theta^6
    c = np.array(
        [
            0,
            1 / 18,
            1 / 12,
            1 / 8,
            5 / 16,
            3 / 8,
            59 / 400,
            93 / 200,
            5490023248 / 9719169821,
            13 / 20,
            1201146811 / 1299019798,
            1,
            1,
            1,
        ]  # fmt: skip
    )
    return ButcherTableau(
        name="dopri8",
        order=8,
        c=c,
        a=_lower(rows),
        b=b,
        b_err=b - b_hat,
        error_order=8,
        dense=dense,
        dense_order=5,
        # A sixth-degree interpolant is far weaker than an 8th-order step at tight
        # tolerances, so save times are stepped to by default.
        exact_save_times=True,
        citation="Prince and Dormand, 'High order embedded Runge-Kutta formulae', J. Comp. Appl. Math. 7, 1981.",
    )


DOPRI5 = _dopri5()
TSIT5 = _tsit5()
DOPRI8 = _dopri8()

TABLEAUX: dict[str, ButcherTableau] = {t.name: t for t in (EULER, MIDPOINT, RK4, BOSH3, DOPRI5, TSIT5, DOPRI8)}
FIXED_SOLVERS = tuple(name for name, t in TABLEAUX.items() if not t.adaptive)
ADAPTIVE_SOLVERS = tuple(name for name, t in TABLEAUX.items() if t.adaptive)


def get_tableau(name: str) -> ButcherTableau:
    """The tableau of a solver name; an unknown name lists the valid ones."""
    try:
        return TABLEAUX[name]
    except KeyError:
        raise SolverNameError(f"unknown solver {name!r}; must be one of {', '.join(TABLEAUX)}") from None
