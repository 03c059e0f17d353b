"""The embedded world: captioned scenes and the attribute probe that judges reconstructions."""
from .scenes import Scene, SceneObject, full_caption, human_caption, render, sample_scene, web_caption

__all__ = ["Scene", "SceneObject", "full_caption", "human_caption", "render", "sample_scene", "web_caption"]
