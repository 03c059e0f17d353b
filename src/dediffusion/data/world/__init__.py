"""The embedded world: procedurally drawn scenes with their captions (the project's offline dataset)."""
from dediffusion.data.world.scenes import (Scene, SceneObject, full_caption, human_caption, render,
                                           sample_scene, web_caption)

__all__ = ["Scene", "SceneObject", "full_caption", "human_caption", "render", "sample_scene", "web_caption"]
