# A thing that takes 30 s to create: cancel tests interrupt it.
terraform {
  backend "s3" {}
  required_providers {
    devramps = {
      source  = "devramps/devramps"
      version = "1.0.0"
    }
  }
}

resource "devramps_thing" "slow" {
  name          = "slow"
  sleep_seconds = 30
}
