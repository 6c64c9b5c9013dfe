# Two things: the first deployment creates both.
terraform {
  backend "s3" {}
  required_providers {
    devramps = {
      source  = "devramps/devramps"
      version = "1.0.0"
    }
  }
}

variable "prefix" {
  type = string
}

variable "size" {
  type    = number
  default = 1
}

resource "devramps_thing" "a" {
  name = "${var.prefix}-a"
  size = var.size
}

resource "devramps_thing" "b" {
  name = "${var.prefix}-b"
  size = 1
}

output "a_id" {
  value = devramps_thing.a.id
}

output "names" {
  value = [devramps_thing.a.name, devramps_thing.b.name]
}
