# A thing whose apply fails (the provider refuses it), unless fail is false.
terraform {
  backend "s3" {}
  required_providers {
    devramps = {
      source  = "devramps/devramps"
      version = "1.0.0"
    }
  }
}

variable "fail" {
  type    = bool
  default = true
}

resource "devramps_thing" "broken" {
  name = "broken"
  fail = var.fail
}
