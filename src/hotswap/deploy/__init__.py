"""Deploys: readiness and drain strategies, the Deployer, start-up adoption, progress events."""

from hotswap.deploy.deployer import Deployer
from hotswap.deploy.progress import DeployHandle, DeployResult, Outcome, Phase, ProgressEvent

__all__ = ["DeployHandle", "DeployResult", "Deployer", "Outcome", "Phase", "ProgressEvent"]
