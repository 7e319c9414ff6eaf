"""Roles: which configured model plays a CNN, a ViT, a GAP ViT, a local-attention ViT, a
pre-activation ResNet or an AlterNet in the claims, from the architectures, never by name.
"""

from __future__ import annotations

ROLES = {
    "cnn": "a CNN: a ResNet (model family resnet)",
    "vit": "a ViT with a class token (family vit)",
    "gap": "a ViT with a global-average-pooling head (family vit, global_pool avg), or a local-attention ViT at a "
           "window that covers its token grid",
    "lmsa": "a local-attention ViT (family local_vit) at two or more kernel sizes",
    "preact": "a pre-activation ResNet (family preact_resnet), AlterNet's base",
    "alternet": "an AlterNet (family alternet)",
}
_TIMM_FAMILIES = (("resnet", "resnet"), ("resnext", "resnet"), ("vit_", "vit"), ("deit", "vit"))


def _family(plan, model: str) -> str:
    info = plan.model_info(model)
    if info.family != "timm":
        return info.family
    arch = plan.model_spec(model)["arch"]
    return next((fam for prefix, fam in _TIMM_FAMILIES if arch.startswith(prefix)), "timm")


def _pooled(plan, model: str) -> bool:
    """A ViT whose head reads the average of the tokens (no class token)."""
    spec = plan.model_spec(model)
    kwargs = spec["kwargs"]
    if "global_pool" in kwargs:
        return kwargs["global_pool"] == "avg"
    return "gap" in spec["arch"] or kwargs.get("class_token") is False


def candidates(plan, role: str) -> list[tuple[str, list[int]]]:
    """(model, kernel sizes) of the configured runs (data.dataset) that fit `role`, in config order."""
    dataset = plan.config["data"]["dataset"]
    runs = [r for exp in plan.experiments.values() for r in exp if r.dataset == dataset]
    models = list(dict.fromkeys(r.model for r in runs))
    kernels = {m: sorted({r.kernel_size for r in runs if r.model == m}) for m in models}
    out = []
    for m in models:
        fam = _family(plan, m)
        if role == "cnn" and fam == "resnet" or role == "preact" and fam == "preact_resnet" or \
                role == "alternet" and fam == "alternet":
            out.append((m, [0]))
        elif role == "vit" and fam == "vit" and not _pooled(plan, m):
            out.append((m, [0]))
        elif role == "gap" and fam == "vit" and _pooled(plan, m):
            out.append((m, [0]))
        elif role == "lmsa" and fam == "local_vit" and len(kernels[m]) >= 2:
            out.append((m, kernels[m]))
    if role == "gap" and not out:  # a local-attention ViT whose window covers the grid is a ViT with GAP
        out = [(m, [max(kernels[m])]) for m in models if _family(plan, m) == "local_vit" and plan.token_grid(m)
               and max(kernels[m]) >= plan.token_grid(m)]
    return out


def resolve_roles(plan) -> dict[str, dict]:
    """{role: {model, kernel_sizes, fractions, seeds, candidates}} for every role some
    configured model plays; `claims.roles` chooses among candidates (checked:
    `check`)."""
    chosen = plan.config.get("claims", {}).get("roles", {})
    dataset = plan.config["data"]["dataset"]
    out = {}
    for role in ROLES:
        found = candidates(plan, role)
        names = [m for m, _ in found]
        if role in chosen:
            found = [(m, k) for m, k in found if m == chosen[role]]
        if not found:
            continue
        model, kernels = found[0]
        runs = [r for exp in plan.experiments.values() for r in exp if r.model == model and r.dataset == dataset]
        out[role] = {"model": model, "kernel_sizes": kernels, "candidates": names,
                     "fractions": sorted({r.fraction for r in runs}), "seeds": sorted({r.seed for r in runs})}
    return out
